/**
 * Pure generator of kopi-docka's three systemd unit files (no I/O):
 *
 *  - `kopi-docka-backup.service` — Type=oneshot: `recover` (ExecStartPre) then `backup`; no start
 *    timeout (a first backup may take hours), KillMode=mixed so kopi-docka itself gets SIGTERM and
 *    restarts the containers it stopped before systemd kills the rest.
 *  - `kopi-docka.timer` — starts the oneshot (never the long-running daemon: the original's
 *    timer-started daemon looped through hundreds of restarts), Persistent=true, RandomizedDelaySec.
 *  - `kopi-docka.service` — the optional daemon: Type=notify, WatchdogSec, Restart=on-failure with a
 *    start limit, Conflicts= the timer so only one schedule is active.
 *
 * Sources followed: systemd.service(5) (Type=, ExecStart= quoting: `"…"` with C escapes, `%%` for a
 * literal %, `$$` for a literal $), systemd.exec(5) (ProtectSystem=strict + ReadWritePaths=,
 * CapabilityBoundingSet=), systemd.timer(5), systemd.unit(5) (StartLimit*), sd_notify(3).
 *
 * Hardening keeps backups working (upstream defects D24 and §6.7): root keeps the capabilities to read
 * every file in a volume whatever its owner and mode (CAP_DAC_READ_SEARCH, CAP_DAC_OVERRIDE, …), and the
 * only writable paths are the ones a run writes: state dir, cache dir (Kopia's cache and logs), Kopia's
 * config dir, the repository, backup_base_path, the recovery bundle dir, and the Docker socket's dir.
 *
 * NotifyAccess=all on the daemon (not `main`): sd_notify is sent by a spawned `systemd-notify` (see
 * src/adapters/systemd-notify.ts). It can claim its parent's PID only with CAP_SYS_ADMIN, which the
 * bounding set below drops on purpose, so the datagram carries systemd-notify's own PID, a child of the
 * main process; `main` would reject it. Verified with setpriv --bounding-set -sys_admin on systemd 252.
 *
 * Errors: UnitSpecError when a path is not absolute or a value holds a control character (a newline
 * would inject unit directives).
 */

export const BACKUP_SERVICE = 'kopi-docka-backup.service';
export const TIMER = 'kopi-docka.timer';
export const DAEMON_SERVICE = 'kopi-docka.service';
export const UNIT_NAMES = [BACKUP_SERVICE, TIMER, DAEMON_SERVICE] as const;

/** Kept in the bounding set: what reading any volume file and restarting containers needs. */
export const CAPABILITIES = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SYS_RESOURCE',
] as const;

export class UnitSpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnitSpecError';
  }
}

export interface UnitSpec {
  /**
   * argv prefix that runs kopi-docka, absolute paths: `[node, /…/dist/main.js]` or `[/usr/bin/kopi-docka]`.
   * Global options (`--config`) are appended after it, then the command.
   */
  program: readonly string[];
  /** Passed as `--config <file>` before every command; undefined = kopi-docka's own search order. */
  configFile?: string | undefined;
  /** Absolute paths the run writes (duplicates and paths inside another one are dropped). */
  writablePaths: readonly string[];
  /** Non-secret environment for the service (DOCKER_HOST, KOPI_DOCKA_STATE_DIR, …). Never a password. */
  environment?: Readonly<Record<string, string>>;
  /** systemd.time(7) calendar spec of the timer; default `*-*-* 02:00:00`. */
  onCalendar?: string;
  /** Seconds of random delay added to each timer start; default 900. */
  randomizedDelaySec?: number;
  /** Daemon watchdog in seconds; the daemon pings every half of it; default 120. */
  watchdogSec?: number;
  /** Seconds kopi-docka gets after SIGTERM to restart the containers it stopped; default 600. */
  timeoutStopSec?: number;
}

export interface GeneratedUnit {
  name: (typeof UNIT_NAMES)[number];
  text: string;
}

function checkValue(what: string, v: string): void {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(v))
    throw new UnitSpecError(`${what} contains a control character: ${JSON.stringify(v)}`);
}

function checkAbsolute(what: string, p: string): void {
  checkValue(what, p);
  if (!p.startsWith('/')) throw new UnitSpecError(`${what} must be an absolute path: ${JSON.stringify(p)}`);
}

const PLAIN = /^[A-Za-z0-9_./:@+=,-]+$/;

/** One ExecStart= argument per systemd.service(5): `%`→`%%`, `$`→`$$`; quoted when not plain. */
export function quoteExecArg(arg: string): string {
  checkValue('command argument', arg);
  if (arg !== '' && PLAIN.test(arg)) return arg;
  const inner = arg.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/%/g, '%%').replace(/\$/g, '$$$$');
  return `"${inner}"`;
}

/** One path of a space-separated path list (ReadWritePaths=): specifiers escaped, quoted when needed. */
export function quotePath(p: string): string {
  checkAbsolute('path', p);
  if (PLAIN.test(p)) return p;
  return `"${p.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/%/g, '%%')}"`;
}

/** One Environment= assignment (systemd.exec(5)): quoted, `%` escaped; no `$` expansion happens there. */
export function quoteEnvironment(name: string, value: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name))
    throw new UnitSpecError(`invalid environment variable name "${name}"`);
  checkValue(`environment variable ${name}`, value);
  return `"${`${name}=${value}`.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/%/g, '%%')}"`;
}

function normalize(p: string): string {
  const parts: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') parts.pop();
    else parts.push(seg);
  }
  return `/${parts.join('/')}`;
}

/** The writable paths, normalized, sorted, without duplicates and without paths inside another one. */
export function minimalPaths(paths: readonly string[]): string[] {
  for (const p of paths) checkAbsolute('writable path', p);
  const sorted = [...new Set(paths.map(normalize))].sort();
  const out: string[] = [];
  for (const p of sorted) {
    if (out.some((q) => q === '/' || p === q || p.startsWith(`${q}/`))) continue;
    out.push(p);
  }
  return out;
}

function commandLine(spec: UnitSpec, command: string): string {
  if (spec.program.length === 0) throw new UnitSpecError('the program to run is empty');
  const first = spec.program[0] ?? '';
  checkAbsolute('program', first);
  const argv = [...spec.program];
  if (spec.configFile !== undefined) {
    checkAbsolute('config file', spec.configFile);
    argv.push('--config', spec.configFile);
  }
  argv.push(command);
  return argv.map(quoteExecArg).join(' ');
}

function positiveInt(what: string, v: number): number {
  if (!Number.isInteger(v) || v <= 0)
    throw new UnitSpecError(`${what} must be a positive whole number of seconds`);
  return v;
}

/** The [Service] lines both services share: environment and the sandbox. */
function hardening(spec: UnitSpec): string[] {
  const env = Object.entries(spec.environment ?? {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `Environment=${quoteEnvironment(k, v)}`);
  const paths = minimalPaths(spec.writablePaths);
  if (paths.length === 0) throw new UnitSpecError('no writable paths: the run could not write its state');
  return [
    ...env,
    '',
    '# Sandbox that keeps backups working: read everything, write only what a run writes.',
    'ProtectSystem=strict',
    `ReadWritePaths=${paths.map(quotePath).join(' ')}`,
    'ProtectHome=read-only',
    'PrivateTmp=yes',
    'PrivateDevices=yes',
    'ProtectKernelTunables=yes',
    'ProtectKernelModules=yes',
    'ProtectKernelLogs=yes',
    'ProtectControlGroups=yes',
    'ProtectClock=yes',
    'ProtectHostname=yes',
    'RestrictRealtime=yes',
    'RestrictNamespaces=yes',
    'LockPersonality=yes',
    'NoNewPrivileges=yes',
    'SystemCallArchitectures=native',
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK',
    'UMask=0077',
    '# Root keeps what reading any volume file needs (owner/mode of a Postgres data dir, …).',
    `CapabilityBoundingSet=${CAPABILITIES.join(' ')}`,
  ];
}

const HEADER = '# Generated by `kopi-docka write-units`; regenerate with --force after changing the config.';

function render(lines: string[]): string {
  return `${lines.join('\n')}\n`;
}

/** The three unit files, in UNIT_NAMES order. Throws UnitSpecError on an invalid spec. */
export function renderUnits(spec: UnitSpec): GeneratedUnit[] {
  const onCalendar = spec.onCalendar ?? '*-*-* 02:00:00';
  checkValue('OnCalendar', onCalendar);
  if (onCalendar.trim() === '') throw new UnitSpecError('OnCalendar is empty');
  const delay = positiveInt('RandomizedDelaySec', spec.randomizedDelaySec ?? 900);
  const watchdog = positiveInt('WatchdogSec', spec.watchdogSec ?? 120);
  const stopSec = positiveInt('TimeoutStopSec', spec.timeoutStopSec ?? 600);
  const sandbox = hardening(spec);
  const after = 'After=docker.service network-online.target';
  const wants = 'Wants=network-online.target';

  const backup = render([
    HEADER,
    '[Unit]',
    'Description=kopi-docka: cold backup of the Docker host into Kopia',
    wants,
    after,
    '',
    '[Service]',
    'Type=oneshot',
    '# Start what a crashed or killed run left stopped, then back up.',
    `ExecStartPre=${commandLine(spec, 'recover')}`,
    `ExecStart=${commandLine(spec, 'backup')}`,
    '# A first backup can take hours: no start timeout.',
    'TimeoutStartSec=infinity',
    '# SIGTERM to kopi-docka only: it stops Kopia and starts the containers again before exiting.',
    'KillMode=mixed',
    `TimeoutStopSec=${stopSec}`,
    ...sandbox,
  ]);

  const timer = render([
    HEADER,
    '[Unit]',
    'Description=kopi-docka: daily backup',
    '',
    '[Timer]',
    `OnCalendar=${onCalendar}`,
    `RandomizedDelaySec=${delay}`,
    '# A run missed while the machine was off starts at the next boot.',
    'Persistent=true',
    `Unit=${BACKUP_SERVICE}`,
    '',
    '[Install]',
    'WantedBy=timers.target',
  ]);

  const daemon = render([
    HEADER,
    '[Unit]',
    'Description=kopi-docka daemon: backups on an interval, watchdog-supervised',
    wants,
    after,
    '# One schedule at a time: starting the daemon stops the timer.',
    `Conflicts=${TIMER}`,
    '# Give up after 5 failed starts in an hour instead of looping.',
    'StartLimitIntervalSec=3600',
    'StartLimitBurst=5',
    '',
    '[Service]',
    'Type=notify',
    '# READY/STATUS/WATCHDOG come from a spawned systemd-notify, not from the main PID (see the docs).',
    'NotifyAccess=all',
    `ExecStartPre=${commandLine(spec, 'recover')}`,
    `ExecStart=${commandLine(spec, 'daemon')}`,
    '# `systemctl reload`: the daemon re-reads its config on SIGHUP (a bad one is logged, the old kept).',
    'ExecReload=/bin/kill -HUP $MAINPID',
    '# recover may wait for restarted containers to become healthy.',
    'TimeoutStartSec=900',
    `WatchdogSec=${watchdog}`,
    'Restart=on-failure',
    'RestartSec=30',
    'KillMode=mixed',
    `TimeoutStopSec=${stopSec}`,
    ...sandbox,
    '',
    '[Install]',
    'WantedBy=multi-user.target',
  ]);

  return [
    { name: BACKUP_SERVICE, text: backup },
    { name: TIMER, text: timer },
    { name: DAEMON_SERVICE, text: daemon },
  ];
}
