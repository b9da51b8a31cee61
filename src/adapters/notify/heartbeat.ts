/**
 * Dead-man switch in the style of healthchecks.io (https://healthchecks.io/docs/http_api/):
 * `POST <url>/start` when a run starts, `POST <url>` when it succeeded, `POST <url>/fail` with the
 * summary as body when it failed. The monitoring side alerts when no success ping arrives in time —
 * which also catches a backup that never ran (a dead timer, a powered-off host).
 */
import type { NotificationMessage } from '../../core/notification.js';
import { request, type HttpResult } from './http.js';

export type HeartbeatKind = 'start' | 'success' | 'fail';

/** `<url>/start`, `<url>`, `<url>/fail`; a query string stays at the end. */
export function heartbeatUrl(url: string, kind: HeartbeatKind): string {
  if (kind === 'success') return url;
  const u = new URL(url);
  u.pathname = `${u.pathname.replace(/\/+$/, '')}/${kind}`;
  return u.toString();
}

export function sendHeartbeat(
  url: string,
  kind: HeartbeatKind,
  msg: NotificationMessage | undefined,
  timeoutMs: number,
): Promise<HttpResult> {
  return request({
    method: 'POST',
    url: heartbeatUrl(url, kind),
    headers: { 'content-type': 'text/plain; charset=utf-8', 'user-agent': 'kopi-docka' },
    // healthchecks.io keeps the body (first 100 kB) with the ping: the summary is visible there.
    body: msg === undefined ? '' : `${msg.title}\n\n${msg.text}`,
    timeoutMs,
  });
}
