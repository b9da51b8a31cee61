/**
 * The one place that starts child processes. argv arrays only (never a shell), stdout/stderr always
 * drained as streams (a full pipe deadlocked the original tool), a timeout and an abort signal that
 * kill the child's whole process group, and errors that carry exit code, signal and stderr tail.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { ProcessError } from '../errors.js';
import { SERVICE_MANAGER_VARIABLES, inheritedEnvironment, searchPath } from '../config/env.js';

export interface RunOptions {
  /** Extra environment, merged over the inherited one (secrets go here, never into argv). */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Data for stdin; stdin is otherwise /dev/null so a child can never prompt on our TTY. */
  input?: string | Buffer | Readable;
  /** Kill the child after this many ms (0 or undefined = no timeout). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Keep at most this many bytes of stdout in the result (default 64 MiB); excess is an error. */
  maxStdoutBytes?: number;
  /** Send stdout here instead of collecting it. */
  stdoutTo?: Writable;
  /** Called with each complete stderr line as it arrives (progress, logs). */
  onStderrLine?: (line: string) => void;
  /** Grace period between SIGTERM and SIGKILL when we stop the child. */
  killGraceMs?: number;
  /**
   * Stop the child when it makes no progress for this many ms (0 or undefined = off) — the stall
   * watchdog: a hung call is caught without a wall-clock limit on a long one. Progress is stdout data,
   * or a stderr line whose `progressKey` differs from the last one seen (default: the line itself;
   * a key of undefined is not progress).
   */
  stallTimeoutMs?: number;
  progressKey?: (line: string) => string | undefined;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderrTail: string;
  timedOut: boolean;
  aborted: boolean;
  /** Stopped by the stall watchdog (RunOptions.stallTimeoutMs); absent or false otherwise. */
  stalled?: boolean;
}

const STDERR_TAIL_BYTES = 4096;

/** Keeps only the last `limit` bytes written to it. */
class Tail {
  private buf = '';
  constructor(private readonly limit: number) {}
  push(chunk: string): void {
    this.buf += chunk;
    if (this.buf.length > this.limit * 2) this.buf = this.buf.slice(-this.limit);
  }
  toString(): string {
    return this.buf.slice(-this.limit);
  }
}

function killTree(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    // Negative pid: the whole process group (the child was started detached as a group leader).
    process.kill(-child.pid, sig);
  } catch {
    try {
      child.kill(sig);
    } catch {
      /* already gone */
    }
  }
}

function isExecutableFile(p: string): boolean {
  try {
    accessSync(p, fsConstants.X_OK);
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/**
 * On Linux every child is started through util-linux `setpriv --pdeathsig SIGKILL`, so the kernel kills
 * it when kopi-docka dies — even by SIGKILL or the OOM killer, which no handler of ours ever sees.
 * Children run in their own process group (so a Ctrl-C on the terminal reaches only us, and we decide
 * how to stop them); without this a Kopia or tar would outlive us as an orphan, reading a volume whose
 * containers `recover` has already started again, or saving a tar stream cut short. Where setpriv is
 * missing (not Linux, a minimal image) children start directly and that guarantee is lost.
 */
const SETPRIV: string | undefined =
  process.platform === 'linux' ? ['/usr/bin/setpriv', '/bin/setpriv'].find(isExecutableFile) : undefined;

/** `cmd` as execvp would find it (PATH from the child's env), or undefined when it cannot be run. */
function resolveCommand(
  cmd: string,
  envPath: string | undefined,
  cwd: string | undefined,
): string | undefined {
  if (cmd.includes('/')) {
    const p = isAbsolute(cmd) ? cmd : resolve(cwd ?? process.cwd(), cmd);
    return isExecutableFile(p) ? p : undefined;
  }
  for (const dir of (envPath ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = resolve(cwd ?? process.cwd(), join(dir, cmd));
    if (isExecutableFile(p)) return p;
  }
  return undefined;
}

/**
 * The argv actually spawned: through setpriv when possible. A command that cannot be resolved is spawned
 * as is, so the caller still gets spawn's own ENOENT/EACCES error (e.g. "kopia not found").
 */
function withParentDeathSignal(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  cwd: string | undefined,
): [string, string[]] {
  const [cmd = '', ...args] = argv;
  const resolved = SETPRIV === undefined ? undefined : resolveCommand(cmd, env.PATH, cwd);
  if (SETPRIV === undefined || resolved === undefined) return [cmd, args];
  return [SETPRIV, ['--pdeathsig', 'SIGKILL', '--', resolved, ...args]];
}

export interface Spawned {
  child: ChildProcess;
  done: Promise<RunResult>;
  /** SIGTERM to the child's process group, SIGKILL after the grace period if it is still there. */
  stop: () => void;
}

/** Start a process; the returned promise resolves with its result whatever the exit code. */
export function start(argv: readonly string[], opts: RunOptions = {}): Spawned {
  if (argv[0] === undefined) throw new Error('start: empty argv');
  const inputIsStream = opts.input !== undefined && typeof opts.input === 'object' && 'pipe' in opts.input;
  const env: NodeJS.ProcessEnv = { ...inheritedEnvironment() };
  // Our notify socket and watchdog are ours: a child never inherits them (config/env.ts).
  for (const name of SERVICE_MANAGER_VARIABLES) delete env[name];
  Object.assign(env, opts.env);
  const [cmd, args] = withParentDeathSignal(argv, env, opts.cwd);
  const child = spawn(cmd, args, {
    cwd: opts.cwd,
    env,
    stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    detached: true,
  });
  let timedOut = false;
  let aborted = false;
  const grace = opts.killGraceMs ?? 5000;
  let killTimer: NodeJS.Timeout | undefined;
  const stop = () => {
    killTree(child, 'SIGTERM');
    killTimer ??= setTimeout(() => killTree(child, 'SIGKILL'), grace);
    killTimer.unref();
  };
  const timer =
    opts.timeoutMs && opts.timeoutMs > 0
      ? setTimeout(() => {
          timedOut = true;
          stop();
        }, opts.timeoutMs)
      : undefined;
  const onAbort = () => {
    aborted = true;
    stop();
  };
  let stalled = false;
  let lastProgressAt = Date.now();
  let lastKey: string | undefined;
  const stallMs = opts.stallTimeoutMs ?? 0;
  const stallTimer =
    stallMs > 0
      ? setInterval(
          () => {
            if (Date.now() - lastProgressAt < stallMs || stalled) return;
            stalled = true;
            stop();
          },
          Math.min(5000, Math.max(50, stallMs / 4)),
        )
      : undefined;
  stallTimer?.unref();
  const sawLine = (l: string) => {
    if (stallMs <= 0) return;
    const key = opts.progressKey ? opts.progressKey(l) : l;
    if (key !== undefined && key !== lastKey) {
      lastKey = key;
      lastProgressAt = Date.now();
    }
  };
  if (opts.signal) {
    if (opts.signal.aborted) onAbort();
    else opts.signal.addEventListener('abort', onAbort, { once: true });
  }

  const maxOut = opts.maxStdoutBytes ?? 64 * 1024 * 1024;
  const outChunks: Buffer[] = [];
  let outBytes = 0;
  let outOverflow = false;
  if (stallMs > 0) child.stdout?.on('data', () => (lastProgressAt = Date.now()));
  if (opts.stdoutTo) {
    child.stdout?.pipe(opts.stdoutTo);
  } else {
    child.stdout?.on('data', (c: Buffer) => {
      outBytes += c.length;
      if (outBytes > maxOut) {
        outOverflow = true;
        return;
      }
      outChunks.push(c);
    });
  }
  const tail = new Tail(STDERR_TAIL_BYTES);
  let partial = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (s: string) => {
    tail.push(s);
    if (opts.onStderrLine || stallMs > 0) {
      const lines = (partial + s).split(/\r?\n|\r/);
      partial = lines.pop() ?? '';
      for (const l of lines) {
        if (!l) continue;
        sawLine(l);
        opts.onStderrLine?.(l);
      }
    }
  });
  if (opts.input !== undefined && child.stdin) {
    child.stdin.on('error', () => {
      /* EPIPE when the child exits early is reported through its exit status */
    });
    if (inputIsStream) (opts.input as Readable).pipe(child.stdin);
    else child.stdin.end(opts.input);
  }

  const done = new Promise<RunResult>((resolve, reject) => {
    child.once('error', (err) => {
      if (timer) clearTimeout(timer);
      if (stallTimer) clearInterval(stallTimer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      if (stallTimer) clearInterval(stallTimer);
      if (killTimer) clearTimeout(killTimer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (partial && opts.onStderrLine) opts.onStderrLine(partial);
      let stderrTail = tail.toString();
      if (outOverflow) stderrTail += `\n[kopi-docka: stdout exceeded ${maxOut} bytes and was truncated]`;
      resolve({
        code: outOverflow && code === 0 ? 1 : code,
        signal,
        stdout: Buffer.concat(outChunks).toString('utf8'),
        stderrTail,
        timedOut,
        aborted,
        ...(stalled ? { stalled } : {}),
      });
    });
  });
  return { child, done, stop };
}

/** The last `n` non-empty lines of a stderr tail, on one line (" | "-joined), for error messages. */
export function lastLines(stderrTail: string, n = 3): string {
  return stderrTail
    .trim()
    .split('\n')
    .filter((l) => l.trim() !== '')
    .slice(-n)
    .join(' | ');
}

/** Run to completion; resolves with the result whatever the exit code (callers judge output first). */
export async function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return start(argv, opts).done;
}

/** Run and require exit code 0. */
export async function runChecked(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const res = await run(argv, opts);
  if (res.code !== 0) throw new ProcessError(argv[0] ?? '?', res);
  return res;
}

export interface PipelineResult {
  producer: RunResult;
  consumer: RunResult;
  /** The consumer failed while the producer was still writing, and the producer was stopped for it. */
  consumerFailedFirst: boolean;
}

/**
 * producer | consumer, without a shell. Both exit statuses are reported: a consumer that succeeded on a
 * truncated stream is still a failed pipeline when the producer failed.
 *
 * Every wait is bounded by the two children's lives: once the consumer has exited (for any reason) the
 * producer's output has nowhere to go, so it is drained to nothing — a child whose stdout pipe is full
 * and unread never ends, and Node never reports its 'close' (the original hang with containers down) —
 * and a producer still running after a failed consumer is stopped (SIGTERM, then SIGKILL). A consumer
 * that failed is the cause; the producer's SIGTERM is only the consequence: `consumerFailedFirst` says
 * so, for messages.
 */
export async function pipeline(
  producerArgv: readonly string[],
  consumerArgv: readonly string[],
  producerOpts: RunOptions,
  consumerOpts: RunOptions,
): Promise<PipelineResult> {
  const { PassThrough } = await import('node:stream');
  const link = new PassThrough();
  const consumer = start(consumerArgv, { ...consumerOpts, input: link });
  const producer = start(producerArgv, { ...producerOpts, stdoutTo: link });
  let producerEnded = false;
  void producer.done.then(
    () => (producerEnded = true),
    () => {
      // Never started: the consumer would wait for a stream that never comes.
      producerEnded = true;
      consumer.stop();
    },
  );
  let consumerFailedFirst = false;
  const afterConsumer = (failed: boolean): void => {
    link.unpipe();
    link.resume();
    if (failed && !producerEnded) {
      consumerFailedFirst = true;
      producer.stop();
    }
  };
  void consumer.done.then(
    (r) => afterConsumer(r.code !== 0),
    () => afterConsumer(true),
  );
  const [p, c] = await Promise.allSettled([producer.done, consumer.done]);
  // A spawn failure (ENOENT…) of one side must not leave the other running.
  if (p.status === 'rejected' || c.status === 'rejected') {
    producer.stop();
    consumer.stop();
    throw p.status === 'rejected' ? p.reason : (c as PromiseRejectedResult).reason;
  }
  return { producer: p.value, consumer: c.value, consumerFailedFirst };
}

/** Is `cmd` resolvable on PATH (or an existing absolute path)? */
export function which(cmd: string): string | undefined {
  return resolveCommand(cmd, searchPath(), undefined);
}
