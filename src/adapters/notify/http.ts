/**
 * One HTTP request with a hard deadline, for the notifiers: Node's built-in fetch (undici) with
 * AbortSignal.timeout(ms). Never throws: a network error, a timeout or a non-2xx status is returned as
 * { ok: false, error }. The error names the target only as redactUrl() does (paths and queries of
 * webhook and heartbeat URLs are secrets).
 */
import { redactUrl } from '../../core/notification.js';

export interface HttpResult {
  ok: boolean;
  /** HTTP status when a response arrived. */
  status?: number | undefined;
  error?: string | undefined;
}

export interface HttpRequest {
  method: 'GET' | 'POST';
  url: string;
  headers?: Record<string, string>;
  body?: string;
  /** Deadline for the whole exchange (connect, send, response, body), in ms. */
  timeoutMs: number;
}

export async function request(req: HttpRequest): Promise<HttpResult> {
  const target = redactUrl(req.url);
  try {
    const res = await fetch(req.url, {
      method: req.method,
      headers: req.headers,
      body: req.body,
      redirect: 'follow',
      signal: AbortSignal.timeout(req.timeoutMs),
    });
    // Read the body so the connection is released; its content is not needed (and may echo secrets).
    await res.arrayBuffer();
    if (res.ok) return { ok: true, status: res.status };
    return { ok: false, status: res.status, error: `${target} answered HTTP ${res.status}` };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    if (e.name === 'TimeoutError' || e.name === 'AbortError') {
      return { ok: false, error: `${target} did not answer within ${req.timeoutMs} ms` };
    }
    const why = e.cause?.code ?? e.cause?.message ?? e.message;
    return { ok: false, error: `${target}: ${why}` };
  }
}
