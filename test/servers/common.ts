/**
 * What the loopback test servers share: a free port, waiting for a port to answer, and starting a
 * server process that cannot outlive the test.
 *
 * Servers are started with `start()` from src/adapters/process.ts, which runs every child through
 * `setpriv --pdeathsig SIGKILL` in its own process group: the kernel kills the server when the test
 * process dies (even by SIGKILL), and `stop()` ends the group. Each server binds 127.0.0.1 only.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { start, type Spawned } from '../../src/adapters/process.js';

export const REPO_ROOT: string = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves when 127.0.0.1:port accepts a TCP connection; rejects after `timeoutMs`. */
export async function waitForPort(
  port: number,
  timeoutMs: number,
  alive: () => string | undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const dead = alive();
    if (dead !== undefined) throw new Error(dead);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline)
      throw new Error(`nothing answered on 127.0.0.1:${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface RunningServer {
  /** 127.0.0.1 */
  host: string;
  port: number;
  /** The server's pid (setpriv execs it in place, so this is the server itself). */
  pid: number;
  /** Temp directory holding the server's files and data; removed by stop(). */
  dir: string;
  /** Stop the server (SIGTERM to its group, SIGKILL after 2 s) and remove its directory. Idempotent. */
  stop: () => Promise<void>;
}

/**
 * Start `argv` as a server listening on 127.0.0.1:port and wait until the port answers.
 * The child's stderr tail is part of the error when it dies or never listens.
 */
export async function startServer(
  name: string,
  argv: readonly string[],
  port: number,
  dir: string,
  env: Record<string, string> = {},
  timeoutMs = 30_000,
): Promise<RunningServer> {
  const sp: Spawned = start(argv, { env, killGraceMs: 2000 });
  let exited: string | undefined;
  let tail = '';
  sp.child.stderr?.on('data', (c: Buffer | string) => {
    tail = (tail + c.toString()).slice(-4000);
  });
  sp.done.then(
    (r) => {
      exited = `${name} exited (code ${String(r.code)}, signal ${String(r.signal)}): ${r.stderrTail.trim() || tail}`;
    },
    (e: unknown) => {
      exited = `${name} did not start: ${String(e)}`;
    },
  );
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    sp.stop();
    await sp.done.catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitForPort(port, timeoutMs, () => exited);
  } catch (e) {
    await stop();
    throw e;
  }
  return { host: '127.0.0.1', port, pid: sp.child.pid ?? -1, dir, stop };
}

export function makeTempDir(prefix: string): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), `kd-${prefix}-`));
}

/** Path of a command on PATH (or the given absolute path when executable), else undefined. */
export function findCommand(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', 'command -v "$1"', 'sh', cmd], { encoding: 'utf8' });
  const p = r.stdout.trim();
  return r.status === 0 && p !== '' ? p : undefined;
}
