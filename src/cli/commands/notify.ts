/**
 * `kopi-docka notify --test`: sends a test message through every channel the `[notifications]`
 * section of the config configures (webhook, ntfy, e-mail, heartbeat) and prints OK/FAIL per channel;
 * exit 0 only when all worked, 1 when one failed, 3 when the settings are invalid or configure no
 * channel.
 *
 * `--settings FILE` tests a JSON object of the same keys instead (webhook_url, ntfy_url, ntfy_token,
 * smtp_*, heartbeat_url, notify_on, timeout_seconds), e.g. {"ntfy_url": "https://…"}, to try a channel
 * before writing it into the config. The file may hold secrets: a group- or world-readable file gets a
 * warning. Secrets (and the repository password, when the config is loaded) never reach a message.
 */
import type { Command } from '@commander-js/extra-typings';
import { readFile, stat } from 'node:fs/promises';
import os from 'node:os';
import { sendTestNotifications } from '../../adapters/notify/index.js';
import {
  configuredChannels,
  parseNotificationSettings,
  type NotificationSettings,
} from '../../core/notification.js';
import { ConfigError, ExitCode, UsageError, errorMessage } from '../../errors.js';
import { createContext, exitState, globalsOf } from '../context.js';
import { paint } from '../output.js';

async function readSettingsFile(file: string): Promise<Record<string, string | number | string[]>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read the notification settings ${file}: ${errorMessage(err)}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${file} is not valid JSON: ${errorMessage(err)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(`${file} must hold one JSON object of [notifications] keys`);
  }
  return value as Record<string, string | number | string[]>;
}

export function register(program: Command): void {
  program
    .command('notify')
    .description('send a test message through every configured alert channel')
    .option('--test', 'send a test message (the only action for now)')
    .option('--settings <file>', 'test the [notifications] keys of this JSON file instead of the config')
    .option('--json', 'print the results as JSON')
    .action(async (opts, cmd) => {
      const ctx = createContext(globalsOf(cmd), opts.json);
      if (opts.test !== true) throw new UsageError('nothing to do', 'use `kopi-docka notify --test`');
      let settings: NotificationSettings;
      let source: string;
      const secrets: string[] = [];
      if (opts.settings !== undefined) {
        const raw = await readSettingsFile(opts.settings);
        const mode = (await stat(opts.settings)).mode;
        if ((mode & 0o077) !== 0) {
          ctx.log.warn(
            `${opts.settings} is readable by other users; it may hold tokens and passwords (chmod 600)`,
          );
        }
        settings = parseNotificationSettings(raw);
        source = opts.settings;
      } else {
        const cfg = await ctx.config();
        settings = cfg.notifications;
        secrets.push(cfg.kopia.password);
        source = `[notifications] of ${cfg.file ?? 'the embedded default configuration'}`;
      }
      const channels = configuredChannels(settings);
      if (channels.length === 0) {
        throw new ConfigError(
          `${source} configures no channel`,
          'set webhook_url, ntfy_url, heartbeat_url, or smtp_host + smtp_from + smtp_to (docs/scheduling.md)',
        );
      }
      const results = await sendTestNotifications(settings, os.hostname(), new Date().toISOString(), secrets);
      const ok = results.every((r) => r.ok);
      if (ctx.out.json) ctx.out.data({ ok, results });
      for (const r of results) {
        const tag = r.ok ? paint(ctx.out, 'green', 'OK  ') : paint(ctx.out, 'red', 'FAIL');
        ctx.out.line(`${tag}  ${r.channel.padEnd(9)} ${r.ms} ms${r.error ? `  ${r.error}` : ''}`);
      }
      exitState.code = ok ? ExitCode.OK : ExitCode.FAILURE;
    });
}
