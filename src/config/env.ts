/**
 * The only module that reads process.env (besides the config loader, which imports from here).
 * Everything else receives these values as arguments.
 */

export function envValue(name: string): string | undefined {
  const v = process.env[name];
  return v === undefined || v === '' ? undefined : v;
}

/** Colours only on a TTY, and never when NO_COLOR is set (https://no-color.org). */
export function colorEnabled(stream: NodeJS.WriteStream): boolean {
  return Boolean(stream.isTTY) && process.env.NO_COLOR === undefined && process.env.TERM !== 'dumb';
}

export function homeDir(): string | undefined {
  return envValue('HOME');
}

/** The environment children inherit (the process runner merges a call's own variables over it). */
export function inheritedEnvironment(): NodeJS.ProcessEnv {
  return process.env;
}

/** PATH, for resolving a command the way a child's exec would. */
export function searchPath(): string | undefined {
  return envValue('PATH');
}

/**
 * JOURNAL_STREAM, which systemd sets to `<device>:<inode>` (decimal) of the stream it connected to
 * the service's stdout/stderr when that stream is the journal (systemd.exec(5), "Environment
 * variables in spawned processes"). Only meaningful when fd 2 still is that stream: compare.
 */
export function journalStream(): string | undefined {
  return envValue('JOURNAL_STREAM');
}

/**
 * The service-manager variables of sd_notify(3) and sd_watchdog_enabled(3): NOTIFY_SOCKET,
 * WATCHDOG_USEC, WATCHDOG_PID (set for a Type=notify service; read by the daemon).
 */
export function notifyEnvironment(): {
  NOTIFY_SOCKET?: string | undefined;
  WATCHDOG_USEC?: string | undefined;
  WATCHDOG_PID?: string | undefined;
} {
  return {
    NOTIFY_SOCKET: envValue('NOTIFY_SOCKET'),
    WATCHDOG_USEC: envValue('WATCHDOG_USEC'),
    WATCHDOG_PID: envValue('WATCHDOG_PID'),
  };
}

/**
 * Variables that belong to kopi-docka's own relation with systemd and must not reach the children it
 * spawns (Kopia, tar, hooks): with NOTIFY_SOCKET a child could send READY=/WATCHDOG= on our behalf
 * (NotifyAccess=all accepts any process of the unit), and WATCHDOG_* would describe a watchdog that
 * is not theirs. A call's own env (e.g. the systemd-notify adapter's NOTIFY_SOCKET) still applies.
 */
export const SERVICE_MANAGER_VARIABLES: readonly string[] = [
  'NOTIFY_SOCKET',
  'WATCHDOG_USEC',
  'WATCHDOG_PID',
];
