/**
 * A tree manifest: everything about a directory tree that a restore must give back, as plain sorted
 * data that `assert.deepEqual` can compare — before backup vs after restore.
 *
 * Per entry (paths relative to the root, `.` is the root itself, sorted by code point):
 * - type, mode (the 12 permission bits incl. setuid/setgid/sticky, as octal), uid, gid;
 * - size and sha256 for regular files (streamed: a 50 MiB file is fine), the target for symlinks;
 * - hardLink: a group id shared by regular files with the same inode (nlink > 1). Ids are derived from
 *   the sorted path lists (group 1 holds the smallest path), never from inode numbers, so two trees
 *   on different filesystems compare equal;
 * - xattrs: the `user.*` extended attributes (`getfattr -h -d -m '^user\.' -e hex`), name → hex;
 * - acl: the POSIX ACL text when the entry has more than the base entries (`getfacl -c -n -s`), incl.
 *   `default:` entries of directories; symlinks have none;
 * - mtime in whole seconds. Kopia keeps nanoseconds and GNU tar's pax format does too, but seconds are
 *   what every tool in the chain is guaranteed to keep.
 *
 * Directory mtimes are included, with a caveat the restore code has to honour: adding or removing an
 * entry (e.g. `ln -f` to re-create a hard link, or deleting a temp file) sets the parent directory's
 * mtime to "now". Re-applying xattrs or ACLs changes only ctime. So a restore that relinks hard links
 * must put the directory times back afterwards; `{ dirMtimes: false }` drops them for trees where
 * that is not the point (e.g. a bind directory Compose itself wrote into).
 *
 * Not recorded: atime and ctime (a restore can never keep them), directory sizes (filesystem-specific),
 * and the inode numbers themselves.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export type EntryType = 'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'block' | 'char';

export interface TreeEntry {
  path: string;
  type: EntryType;
  /** Octal, 4 digits: permission bits incl. setuid/setgid/sticky, e.g. "2775". */
  mode: string;
  uid: number;
  gid: number;
  /** Regular files only. */
  size?: number;
  sha256?: string;
  /** Symlinks only. */
  target?: string;
  /** Hard-link group (1-based), regular files with nlink > 1 only. */
  hardLink?: number;
  /** `user.*` xattrs, name → hex value (`0x…`); absent when there are none. */
  xattrs?: Record<string, string>;
  /** Extended ACL entries as `getfacl -c -n -s` prints them; absent for base-only ACLs. */
  acl?: string;
  /** Whole seconds since the epoch; absent for directories when `dirMtimes` is false. */
  mtime?: number;
}

export interface TreeOptions {
  /** Record directory mtimes (default true). See the module comment. */
  dirMtimes?: boolean;
  /** Record the root entry `.` (default true). */
  root?: boolean;
}

function typeOf(st: Awaited<ReturnType<typeof lstat>>): EntryType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isBlockDevice()) return 'block';
  return 'char';
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** `user.*` xattrs of one path, never following a symlink. */
export async function userXattrs(file: string): Promise<Record<string, string>> {
  // --absolute-names only silences "Removing leading '/'"; the header line is ignored anyway.
  const { stdout } = await execFileP(
    'getfattr',
    ['-h', '-d', '-m', '^user\\.', '-e', 'hex', '--absolute-names', '--', file],
    { maxBuffer: 16 * 1024 * 1024 },
  );
  const out: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    // An attribute with an empty value prints as the bare name.
    if (eq < 0) out[line] = '';
    else out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

/** Extended ACL text (access and default entries), or '' when only the base entries exist. */
export async function aclText(file: string): Promise<string> {
  const { stdout } = await execFileP('getfacl', ['-c', '-n', '-s', '--', file], {
    maxBuffer: 16 * 1024 * 1024,
  });
  return stdout
    .split('\n')
    .filter((l) => l !== '')
    .join('\n');
}

/** Every path under root (root itself as '.'), depth first, never following symlinks. */
async function listPaths(root: string): Promise<string[]> {
  const out: string[] = ['.'];
  const walk = async (rel: string): Promise<void> => {
    const abs = rel === '.' ? root : path.join(root, rel);
    for (const ent of await readdir(abs, { withFileTypes: true })) {
      const child = rel === '.' ? ent.name : `${rel}/${ent.name}`;
      out.push(child);
      if (ent.isDirectory()) await walk(child);
    }
  };
  await walk('.');
  return out;
}

/** Code-point order (not locale order), so the manifest is identical whatever the environment. */
function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export async function treeManifest(root: string, opts: TreeOptions = {}): Promise<TreeEntry[]> {
  const dirMtimes = opts.dirMtimes ?? true;
  const paths = (await listPaths(root)).filter((p) => opts.root !== false || p !== '.').sort(byCodePoint);
  const entries: TreeEntry[] = [];
  const inodes = new Map<string, string[]>();
  const byPath = new Map<string, TreeEntry>();
  for (const rel of paths) {
    const abs = rel === '.' ? root : path.join(root, rel);
    const st = await lstat(abs);
    const type = typeOf(st);
    const e: TreeEntry = {
      path: rel,
      type,
      mode: (st.mode & 0o7777).toString(8).padStart(4, '0'),
      uid: st.uid,
      gid: st.gid,
    };
    if (type === 'file') {
      e.size = st.size;
      e.sha256 = await sha256File(abs);
      if (st.nlink > 1) {
        const key = `${st.dev}:${st.ino}`;
        const g = inodes.get(key);
        if (g) g.push(rel);
        else inodes.set(key, [rel]);
      }
    }
    if (type === 'symlink') e.target = await readlink(abs);
    const x = await userXattrs(abs);
    if (Object.keys(x).length > 0) e.xattrs = x;
    if (type !== 'symlink') {
      const acl = await aclText(abs);
      if (acl) e.acl = acl;
    }
    if (type !== 'dir' || dirMtimes) e.mtime = Math.floor(st.mtimeMs / 1000);
    entries.push(e);
    byPath.set(rel, e);
  }
  // Group ids from the sorted path lists: independent of inode numbers and of walk order.
  const groups = [...inodes.values()]
    .filter((g) => g.length > 1)
    .map((g) => g.sort(byCodePoint))
    .sort((a, b) => byCodePoint(a[0] ?? '', b[0] ?? ''));
  groups.forEach((g, i) => {
    for (const p of g) {
      const e = byPath.get(p);
      if (e) e.hardLink = i + 1;
    }
  });
  return entries;
}

/** Human-readable differences (for assertion messages): one line per path that differs. */
export function diffTrees(expected: TreeEntry[], actual: TreeEntry[]): string[] {
  const a = new Map(expected.map((e) => [e.path, e]));
  const b = new Map(actual.map((e) => [e.path, e]));
  const out: string[] = [];
  for (const p of [...new Set([...a.keys(), ...b.keys()])].sort(byCodePoint)) {
    const x = a.get(p);
    const y = b.get(p);
    if (!x) {
      out.push(`+ ${p} (only after)`);
      continue;
    }
    if (!y) {
      out.push(`- ${p} (missing after)`);
      continue;
    }
    const diffs: string[] = [];
    for (const k of new Set([...Object.keys(x), ...Object.keys(y)]) as Set<keyof TreeEntry>) {
      const vx = JSON.stringify(x[k]);
      const vy = JSON.stringify(y[k]);
      if (vx !== vy) diffs.push(`${k}: ${vx ?? 'none'} → ${vy ?? 'none'}`);
    }
    if (diffs.length > 0) out.push(`~ ${p}: ${diffs.join(', ')}`);
  }
  return out;
}
