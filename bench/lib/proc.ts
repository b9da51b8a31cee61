/**
 * Child processes for the benchmark: argv arrays (a shell only where a baseline is "what a person types",
 * see shellQuote), each child in its own process group so an interrupt kills the whole tree, wall time
 * measured around spawn → close, and every output line kept with the time it arrived (used to time
 * phases of a run from its log, e.g. the data part of a restore).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';

export interface Line {
  /** performance.now() when the line arrived. */
  t: number;
  stream: 'stdout' | 'stderr';
  text: string;
}

export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** performance.now() just before spawn and at close. */
  t0: number;
  t1: number;
  /** Wall time, ms. */
  ms: number;
  lines: Line[];
}

export interface ExecOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  input?: string;
  /** Kill the process group after this long (default 30 min). */
  timeoutMs?: number;
  /** Resolve on a non-zero exit instead of throwing. */
  allowFail?: boolean;
  /** Called right after spawn with the child's pid (e.g. to poll its memory). */
  onSpawn?: (pid: number) => void;
  /** Called with every complete line as it arrives. */
  onLine?: (line: Line) => void;
  /** Part of removing what the run created: still allowed after an interrupt. */
  cleanup?: boolean;
}

const active = new Set<ChildProcess>();
/** Set by killAllChildren: from then on nothing new is started (cleanup uses exec with force). */
let stopping = false;

function killGroup(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, sig);
  } catch {
    try {
      child.kill(sig);
    } catch {
      /* already gone */
    }
  }
}

/**
 * Interrupt path: kill every child this process started that is still running, and refuse to start
 * new ones, except those marked `cleanup` (the removals).
 */
export function killAllChildren(sig: NodeJS.Signals = 'SIGTERM'): void {
  stopping = true;
  for (const c of active) killGroup(c, sig);
}

function tail(s: string, n = 3000): string {
  return s.length <= n ? s : `…${s.slice(-n)}`;
}

export class ExecError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly result: ExecResult,
  ) {
    const how = result.signal ? `signal ${result.signal}` : `exit ${String(result.code)}`;
    super(
      `${argv.join(' ')} failed (${how})\n${tail(result.stderr.trim() || result.stdout.trim())}`.trimEnd(),
    );
  }
}

export function exec(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) return Promise.reject(new Error('exec: empty argv'));
  if (stopping && !opts.cleanup) return Promise.reject(new Error(`interrupted: not starting ${cmd}`));
  return new Promise<ExecResult>((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      detached: true,
    });
    active.add(child);
    if (child.pid !== undefined) opts.onSpawn?.(child.pid);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const lines: Line[] = [];
    const splitter = (stream: Line['stream'], sink: Buffer[]) => {
      let partial = '';
      return {
        data: (b: Buffer) => {
          sink.push(b);
          const t = performance.now();
          const parts = (partial + b.toString('utf8')).split('\n');
          partial = parts.pop() ?? '';
          for (const text of parts) {
            const l = { t, stream, text };
            lines.push(l);
            opts.onLine?.(l);
          }
        },
        flush: () => {
          if (partial) {
            const l = { t: performance.now(), stream, text: partial };
            lines.push(l);
            opts.onLine?.(l);
          }
        },
      };
    };
    const so = splitter('stdout', out);
    const se = splitter('stderr', err);
    child.stdout?.on('data', so.data);
    child.stderr?.on('data', se.data);
    if (child.stdin) {
      child.stdin.on('error', () => undefined);
      child.stdin.end(opts.input ?? '');
    }
    const timer = setTimeout(() => killGroup(child, 'SIGKILL'), opts.timeoutMs ?? 30 * 60_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      active.delete(child);
      reject(new Error(`cannot run ${cmd}: ${e.message}`));
    });
    child.once('close', (code, signal) => {
      const t1 = performance.now();
      clearTimeout(timer);
      active.delete(child);
      so.flush();
      se.flush();
      const r: ExecResult = {
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        t0,
        t1,
        ms: t1 - t0,
        lines,
      };
      if (code !== 0 && !opts.allowFail) reject(new ExecError(argv, r));
      else resolve(r);
    });
  });
}

/** Single-quote for bash, for the baselines that are literally a shell pipeline. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Run `fn` over items with at most `limit` at once; rejects with the first error after all settle. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (x: T) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let firstError: unknown;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i] as T);
      } catch (e) {
        firstError ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (firstError !== undefined) {
    throw firstError instanceof Error ? firstError : new Error(JSON.stringify(firstError));
  }
  return out;
}

/**
 * `sync` before a timed step (not timed itself): the previous step's writes (a repository, a restore)
 * are flushed, so the next step does not pay for them through background writeback.
 */
export async function flushDisk(): Promise<void> {
  await exec(['sync']);
}
