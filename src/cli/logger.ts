/**
 * Human log lines on stderr. On a TTY: plain text; otherwise each line gets a syslog priority prefix
 * (`<6>…`) so journald records the level when run under systemd.
 */
import type { LogLevel } from '../config/types.js';
import type { Logger } from '../core/log.js';

export type { Logger };

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warning: 30, error: 40 };
const PRIORITY: Record<LogLevel, number> = { debug: 7, info: 6, warning: 4, error: 3 };

export function createLogger(level: LogLevel, stream: NodeJS.WriteStream = process.stderr): Logger {
  const tty = Boolean(stream.isTTY);
  const write = (l: LogLevel, msg: string) => {
    if (ORDER[l] < ORDER[logger.level]) return;
    const prefix = tty ? (l === 'info' ? '' : `${l}: `) : `<${PRIORITY[l]}>`;
    const line = `${prefix}${msg}\n`;
    if (logger.around) logger.around(() => stream.write(line));
    else stream.write(line);
  };
  const logger: Logger = {
    level,
    debug: (m) => write('debug', m),
    info: (m) => write('info', m),
    warn: (m) => write('warning', m),
    error: (m) => write('error', m),
  };
  return logger;
}

export function parseLogLevel(v: string): LogLevel | undefined {
  const s = v.toLowerCase();
  if (s === 'warn') return 'warning';
  return s === 'debug' || s === 'info' || s === 'warning' || s === 'error' ? s : undefined;
}
