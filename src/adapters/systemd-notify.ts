/**
 * sd_notify(3) without a native addon: READY=1, STATUS=…, WATCHDOG=1, STOPPING=1 to the service
 * manager's NOTIFY_SOCKET.
 *
 * Why a spawned `systemd-notify` (Debian package `systemd`, always there where systemd runs us):
 *  - Node has no AF_UNIX SOCK_DGRAM sockets. The npm packages that add them need a compiler at
 *    install (sd-notify: missing sd-daemon.h; unix-dgram: node-gyp) or ship a `.node` file that a
 *    single executable cannot embed (koffi, node-unix-socket) — /work/shared/reference/libraries.md E6.
 *  - A Python helper would add a dependency the host may lack; systemd-notify is systemd's own client
 *    of the protocol (it speaks every NOTIFY_SOCKET form: path, abstract `@name`, vsock).
 *  - systemd-notify 252 waits with BARRIER=1 until the manager has processed the message, so the
 *    short-lived sender is still attributable to the unit (no exit race, systemd-notify(1)).
 *  - It sends with its parent's PID only with CAP_SYS_ADMIN (SCM_CREDENTIALS forging); the generated
 *    unit drops that capability, so the datagram carries systemd-notify's own PID and the unit needs
 *    NotifyAccess=all (src/core/systemd-units.ts). Never `--pid=`: that sends MAINPID= and would move
 *    the unit's main PID to us-or-the-helper.
 * Cost: one short process per message; the watchdog pings every WATCHDOG_USEC/2 (e.g. 60 s), which is
 * negligible, and a ping from a JS timer proves the event loop is alive.
 *
 * The environment is passed in (only src/config/ reads process.env). Nothing here throws: a failed
 * send is returned as { sent: false, error } for the caller to log. Messages are sent one at a time in
 * call order.
 */
import { run, type RunOptions, type RunResult } from './process.js';

/** The variables systemd sets for a Type=notify service (systemd.exec(5), sd_notify(3)). */
export interface NotifyEnv {
  readonly NOTIFY_SOCKET?: string | undefined;
  /** Watchdog timeout in microseconds (WatchdogSec=). */
  readonly WATCHDOG_USEC?: string | undefined;
  /** The PID the watchdog applies to; another PID means "not us" (sd_watchdog_enabled(3)). */
  readonly WATCHDOG_PID?: string | undefined;
}

export interface NotifyResult {
  /** True when the message was handed to the service manager; false when disabled or failed. */
  sent: boolean;
  /** Why sending failed (undefined when disabled or sent). */
  error?: string | undefined;
}

export interface SdNotifier {
  /** False when NOTIFY_SOCKET is unset: every method is then a no-op that resolves { sent: false }. */
  readonly enabled: boolean;
  /** Ping interval in ms (half the watchdog timeout), or undefined when no watchdog applies to us. */
  readonly watchdogIntervalMs: number | undefined;
  /** READY=1: start-up finished (Type=notify). */
  ready(): Promise<NotifyResult>;
  /** STATUS=<text>: one line shown by `systemctl status`; control characters become spaces. */
  status(text: string): Promise<NotifyResult>;
  /** WATCHDOG=1: keep-alive; send every watchdogIntervalMs. */
  watchdog(): Promise<NotifyResult>;
  /** STOPPING=1: shutdown began. */
  stopping(): Promise<NotifyResult>;
}

/** Runs one argv (src/adapters/process.ts `run` by default); injectable for tests. */
export type NotifyRunner = (argv: readonly string[], opts: RunOptions) => Promise<RunResult>;

export interface NotifierOptions {
  /** Our PID, compared with WATCHDOG_PID; default process.pid. */
  pid?: number;
  /** The systemd-notify executable; default `systemd-notify` on PATH. */
  binary?: string;
  /** Kill systemd-notify after this many ms; default 10 000 (its barrier waits up to 5 s). */
  timeoutMs?: number;
  runner?: NotifyRunner;
}

const MAX_STATUS_CHARS = 400;

/**
 * Half the watchdog timeout in ms, as sd_watchdog_enabled(3) describes: WATCHDOG_USEC must be a
 * positive integer, and WATCHDOG_PID, when set, must be our PID. Undefined otherwise.
 */
export function watchdogIntervalMs(env: NotifyEnv, pid: number): number | undefined {
  const usecText = env.WATCHDOG_USEC;
  if (usecText === undefined || !/^\d+$/.test(usecText)) return undefined;
  const usec = Number(usecText);
  if (!Number.isSafeInteger(usec) || usec <= 0) return undefined;
  const pidText = env.WATCHDOG_PID;
  if (pidText !== undefined && pidText !== '' && pidText !== String(pid)) return undefined;
  return Math.max(1, Math.floor(usec / 2000));
}

/** One line, no control characters, bounded length: STATUS= is a single line in `systemctl status`. */
export function statusLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  const line = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return line.length > MAX_STATUS_CHARS ? `${line.slice(0, MAX_STATUS_CHARS - 1)}…` : line;
}

/** A notifier bound to `env`; a no-op (enabled=false) when NOTIFY_SOCKET is unset or empty. */
export function createNotifier(env: NotifyEnv, opts: NotifierOptions = {}): SdNotifier {
  const socket = env.NOTIFY_SOCKET;
  const enabled = socket !== undefined && socket !== '';
  const binary = opts.binary ?? 'systemd-notify';
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const runner = opts.runner ?? run;
  let queue: Promise<unknown> = Promise.resolve();

  const send = (assignment: string): Promise<NotifyResult> => {
    if (!enabled) return Promise.resolve({ sent: false });
    const attempt = async (): Promise<NotifyResult> => {
      try {
        const r = await runner([binary, assignment], { env: { NOTIFY_SOCKET: socket }, timeoutMs });
        if (r.code === 0) return { sent: true };
        const why = r.timedOut
          ? `timed out after ${timeoutMs} ms`
          : `exited with ${String(r.code ?? r.signal)}`;
        const tail = r.stderrTail.trim();
        return { sent: false, error: `systemd-notify ${why}${tail ? `: ${tail}` : ''}` };
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        return {
          sent: false,
          error:
            code === 'ENOENT'
              ? `${binary} not found (Debian package "systemd")`
              : `systemd-notify failed: ${err instanceof Error ? err.message : String(err)}`,
        };
      }
    };
    const next = queue.then(attempt, attempt);
    queue = next;
    return next;
  };

  return {
    enabled,
    watchdogIntervalMs: enabled ? watchdogIntervalMs(env, opts.pid ?? process.pid) : undefined,
    ready: () => send('READY=1'),
    status: (text) => send(`STATUS=${statusLine(text)}`),
    watchdog: () => send('WATCHDOG=1'),
    stopping: () => send('STOPPING=1'),
  };
}

/**
 * Sends WATCHDOG=1 every `n.watchdogIntervalMs` from a timer — so the pings prove the event loop is
 * alive and keep coming while a backup runs (the original pinged from its backup loop and was killed
 * mid-backup). A ping still in flight makes the next tick skip instead of queueing. A failed ping is
 * handed to `onError` (to log). Returns stop(); a no-op when no watchdog applies.
 */
export function startWatchdog(n: SdNotifier, onError?: (error: string) => void): () => void {
  const interval = n.watchdogIntervalMs;
  if (!n.enabled || interval === undefined) return () => undefined;
  let inFlight = false;
  const timer = setInterval(() => {
    if (inFlight) return;
    inFlight = true;
    void n.watchdog().then((r) => {
      inFlight = false;
      if (!r.sent && r.error !== undefined) onError?.(r.error);
    });
  }, interval);
  return () => clearInterval(timer);
}
