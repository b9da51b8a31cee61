// Placeholder until the config loader lands.
import type { Config } from './types.js';
export function loadConfig(_opts: { explicitPath?: string | undefined }): Promise<Config> {
  return Promise.reject(new Error('config loader not implemented yet'));
}
