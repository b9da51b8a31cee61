/** Generic webhook: `POST <webhook_url>` with the run's JSON payload (WebhookPayload, version 1). */
import type { NotificationMessage } from '../../core/notification.js';
import { request, type HttpResult } from './http.js';

export function sendWebhook(url: string, msg: NotificationMessage, timeoutMs: number): Promise<HttpResult> {
  return request({
    method: 'POST',
    url,
    headers: { 'content-type': 'application/json', 'user-agent': 'kopi-docka' },
    body: JSON.stringify(msg.payload),
    timeoutMs,
  });
}
