/**
 * The run lock: one backup, restore or daemon run at a time per state directory. A PID file created
 * atomically (hard link: exclusive, and never seen empty); a lock whose process is gone (SIGKILL, power
 * loss) is taken over, so a crash never blocks the next scheduled run.
 */
import { link, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LockBusyError } from '../errors.js';
import { ensurePrivateDir } from '../fsutil.js';

export interface LockInfo {
  pid: number;
  command: string;
  since: string;
}

export interface HeldLock {
  path: string;
  release(): Promise<void>;
}

/** Is a process with this pid alive (EPERM: it exists but belongs to someone else)? */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readLockFile(file: string): Promise<LockInfo | undefined> {
  try {
    const info = JSON.parse(await readFile(file, 'utf8')) as LockInfo;
    return typeof info.pid === 'number' ? info : undefined;
  } catch {
    return undefined;
  }
}

export async function readLock(stateDir: string): Promise<LockInfo | undefined> {
  return readLockFile(join(stateDir, 'run.lock'));
}

export async function lockState(stateDir: string): Promise<'free' | 'held' | 'stale'> {
  const info = await readLock(stateDir);
  if (!info) return 'free';
  return processAlive(info.pid) ? 'held' : 'stale';
}

function busy(holder: LockInfo, path: string): LockBusyError {
  return new LockBusyError(
    `another kopi-docka ${holder.command} is running (pid ${holder.pid}, since ${holder.since})`,
    `wait for it to finish; the lock is ${path}`,
  );
}

export async function acquireLock(stateDir: string, command: string): Promise<HeldLock> {
  await ensurePrivateDir(stateDir);
  const path = join(stateDir, 'run.lock');
  const info: LockInfo = { pid: process.pid, command, since: new Date().toISOString() };
  // The lock appears with its content or not at all (written aside, then hard-linked into place, which
  // fails if it exists): a contender never reads an empty lock and takes it for a stale one.
  const mine = `${path}.${process.pid}.new`;
  await writeFile(mine, JSON.stringify(info), { mode: 0o600 });
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await link(mine, path);
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
      if (holder && processAlive(holder.pid) && holder.pid !== process.pid) throw busy(holder, path);
      // Stale (or unreadable): move it aside atomically, then check that what we moved is what we
      // judged stale — a contender may have taken it over and locked in between.
      const aside = `${path}.stale-${process.pid}`;
      await rename(path, aside).catch(() => undefined);
      const moved = await readLockFile(aside);
      if (moved && moved.pid !== holder?.pid && moved.pid !== process.pid && processAlive(moved.pid)) {
        await link(aside, path).catch(() => undefined);
        await rm(aside, { force: true });
        throw busy(moved, path);
      }
      await rm(aside, { force: true });
    }
  } finally {
    await rm(mine, { force: true });
  }
  throw new LockBusyError(`could not take the run lock ${path}`, 'remove it if no kopi-docka is running');
}
