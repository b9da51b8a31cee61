/** Small filesystem helpers shared by adapters and pipeline: existence, atomic writes, private dirs. */
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Write a file so that readers see the old or the new content, never a torn one (tmp + fsync + rename). */
export async function writeFileAtomic(path: string, data: string | Buffer, mode = 0o600): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${process.pid}`;
  const fh = await open(tmp, 'w', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

export async function ensurePrivateDir(path: string): Promise<void> {
  await mkdir(path, { recursive: true, mode: 0o700 });
}

export async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * `mkdir -p` that reports the real cause: Node's recursive mkdir answers ENOENT where the first missing
 * directory cannot be created for another reason (EROFS on a read-only mount, EACCES…). Then the first
 * missing directory is created alone, which throws the true error (code, syscall `mkdir`, its path).
 *
 * @throws NodeJS.ErrnoException (ENOTDIR, EROFS, EACCES, ENOSPC…).
 */
export async function makeDirectory(path: string, mode = 0o700): Promise<void> {
  try {
    await mkdir(path, { recursive: true, mode });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    let missing = path;
    while (dirname(missing) !== missing && !(await exists(dirname(missing)))) missing = dirname(missing);
    await mkdir(missing, { mode });
    throw err;
  }
}
