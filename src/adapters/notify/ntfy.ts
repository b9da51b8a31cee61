/**
 * ntfy (https://docs.ntfy.sh/publish/): `POST <topic URL>` with the text as body and the Title,
 * Priority and Tags headers; an access token goes in `Authorization: Bearer`. Header values must be
 * Latin-1 for fetch, so a title with other characters is sent RFC 2047-encoded (`=?UTF-8?B?…?=`),
 * which ntfy decodes.
 */
import type { NotificationMessage } from '../../core/notification.js';
import { request, type HttpResult } from './http.js';

/** The header value as is when printable ASCII, else RFC 2047 base64 encoded-word. */
export function headerValue(text: string): string {
  if (/^[\x20-\x7e]*$/.test(text)) return text;
  return `=?UTF-8?B?${Buffer.from(text, 'utf8').toString('base64')}?=`;
}

export function sendNtfy(
  url: string,
  token: string | undefined,
  msg: NotificationMessage,
  timeoutMs: number,
): Promise<HttpResult> {
  const headers: Record<string, string> = {
    'content-type': 'text/plain; charset=utf-8',
    'user-agent': 'kopi-docka',
    title: headerValue(msg.title),
    priority: msg.priority,
    tags: msg.tags.join(','),
  };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  return request({ method: 'POST', url, headers, body: msg.text, timeoutMs });
}
