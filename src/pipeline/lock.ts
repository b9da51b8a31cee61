/**
 * The run lock: one backup, restore or daemon run at a time per state directory. A PID file created
 * with O_EXCL; a lock whose process is gone (SIGKILL, power loss) is taken over, so a crash never
 * blocks the next scheduled run.
 */
import { open, readFile, rm, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { LockBusyError } from '../errors.js';
import { ensurePrivateDir } from './fsutil.js';

export interface LockInfo {
  pid: number;
  command: string;
  since: string;
}

export interface HeldLock {
  path: string;
  release(): Promise<void>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function readLock(stateDir: string): Promise<LockInfo | undefined> {
  try {
    const info = JSON.parse(await readFile(join(stateDir, 'run.lock'), 'utf8')) as LockInfo;
    return typeof info.pid === 'number' ? info : undefined;
  } catch {
    return undefined;
  }
}

export async function lockState(stateDir: string): Promise<'free' | 'held' | 'stale'> {
  const info = await readLock(stateDir);
  if (!info) return 'free';
  return alive(info.pid) ? 'held' : 'stale';
}

export async function acquireLock(stateDir: string, command: string): Promise<HeldLock> {
  await ensurePrivateDir(stateDir);
  const path = join(stateDir, 'run.lock');
  const info: LockInfo = { pid: process.pid, command, since: new Date().toISOString() };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o600);
      await fh.writeFile(JSON.stringify(info));
      await fh.close();
      return {
        path,
        async release() {
          const cur = await readLock(stateDir);
          if (cur?.pid === process.pid) await rm(path, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = await readLock(stateDir);
    if (holder && alive(holder.pid) && holder.pid !== process.pid) {
      throw new LockBusyError(
        `another kopi-docka ${holder.command} is running (pid ${holder.pid}, since ${holder.since})`,
        `wait for it to finish; the lock is ${path}`,
      );
    }
    // Stale: move it aside atomically so two contenders cannot both delete a fresh lock.
    await rename(path, `${path}.stale-${process.pid}`).catch(() => undefined);
    await rm(`${path}.stale-${process.pid}`, { force: true });
  }
  throw new LockBusyError(`could not take the run lock ${path}`, 'remove it if no kopi-docka is running');
}
