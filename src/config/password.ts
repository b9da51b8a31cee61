/**
 * The repository password: read from a password file, or generated once for the embedded default.
 * Errors name the file and say what to do; nothing here reads the environment.
 */
import { randomBytes } from 'node:crypto';
import type { Stats } from 'node:fs';
import { link, mkdir, open, readFile, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError } from '../errors.js';
import { describeFsError, errnoCode, exists, modeText } from './locate.js';

/**
 * Reads a password file: the whole file, trailing newlines dropped. `what` prefixes errors (e.g.
 * `file:3: [kopia] password_file`). Throws ConfigError when it is missing, unreadable, not a
 * regular file, or empty.
 */
export async function readPasswordFile(
  file: string,
  what: string,
): Promise<{ password: string; stats: Stats }> {
  let text: string;
  let stats: Stats;
  try {
    stats = await stat(file);
    if (stats.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    // A FIFO or device would block or never end; a password lives in a regular file.
    if (!stats.isFile()) throw new Error('not a regular file');
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `${what}: cannot read password file ${file}: ${describeFsError(err)}`,
      'create it with the repository password on one line, owned by root with mode 600',
    );
  }
  const password = text.replace(/[\r\n]+$/, '');
  if (password === '') {
    throw new ConfigError(
      `${what}: password file ${file} is empty`,
      'put the repository password in it (one line)',
    );
  }
  return { password, stats };
}

export function loosePermissionWarning(file: string, stats: Stats, what: string): string | undefined {
  if ((stats.mode & 0o077) === 0) return undefined;
  return `${file} ${what} but is accessible to group/others (mode ${modeText(stats.mode)}); run: chmod 600 ${file}`;
}

/**
 * The embedded default's password: generated once and kept in `file`. Written to a private temp file
 * and hard-linked into place, so a concurrent run either creates it or reads a complete one.
 */
export async function ensureGeneratedPassword(
  file: string,
  stateDirEnv: string,
): Promise<{ password: string; stats: Stats }> {
  const what = 'embedded default';
  if (!(await exists(file))) {
    try {
      await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
      await createPasswordFile(file, `${randomBytes(32).toString('base64url')}\n`);
    } catch (err) {
      throw new ConfigError(
        `no config file found, and the embedded default cannot create its password file ${file}: ${describeFsError(err)}`,
        `run as root, set ${stateDirEnv} to a writable directory, or write a config file (see docs/configuration.md)`,
      );
    }
  }
  return readPasswordFile(file, what);
}

/** Creates `file` (mode 0600) with `content` unless it already exists; never overwrites, never leaves it half-written. */
async function createPasswordFile(file: string, content: string): Promise<void> {
  const writeExclusive = async (target: string) => {
    const handle = await open(target, 'wx', 0o600);
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
  };
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  await writeExclusive(tmp);
  try {
    await link(tmp, file);
  } catch (err) {
    const code = errnoCode(err);
    // EEXIST: a concurrent run won the race, and its file is complete; use that one.
    if (code === 'EEXIST') return;
    // No hard links on this filesystem: an exclusive create still never overwrites a password.
    if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP') await writeExclusive(file);
    else throw err;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}
