/**
 * A streaming walk of a directory tree with lstat (never follows symlinks): total size, file count,
 * hard-link groups, and the names that are not UTF-8. Used for dry-run sizes and for the direct-mode
 * sidecar (Kopia does not keep hard links).
 *
 * Linux file names are bytes. The walk reads them as Buffers and addresses every entry by its exact
 * bytes: decoding a Latin-1 name as UTF-8 would produce a different name (U+FFFD) that lstat then
 * cannot find — one such file used to fail the whole volume.
 */
import { lstat, opendir } from 'node:fs/promises';

export interface TreeStats {
  /** Sum of lstat sizes of everything but directories (bytes). */
  bytes: number;
  files: number;
  dirs: number;
  /**
   * Groups of paths (relative to the root, "/"-separated) that share one inode; only groups of 2+.
   * Only UTF-8 paths: a group with a non-UTF-8 member is left out (such a source is not snapshotted
   * in direct mode, see data.ts).
   */
  hardLinks: string[][];
  /** How many entries have a name (or a parent directory name) that is not valid UTF-8. */
  nonUtf8Count: number;
  /** Up to NON_UTF8_EXAMPLES of them, for messages: relative path with invalid bytes shown as \xNN. */
  nonUtf8Examples: string[];
  /**
   * Entries that are neither regular files, directories nor symlinks, by kind: Kopia's directory
   * snapshots drop them (its "ignore unknown types" policy), GNU tar keeps FIFOs and devices and skips
   * sockets. Each with a count and up to NON_UTF8_EXAMPLES example paths.
   */
  special: Record<SpecialKind, { count: number; examples: string[] }>;
}

export type SpecialKind = 'fifo' | 'socket' | 'char-device' | 'block-device';

const NON_UTF8_EXAMPLES = 5;
const SLASH = Buffer.from('/');
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** The name as a string when its bytes are valid UTF-8; undefined otherwise. */
export function utf8Name(bytes: Buffer): string | undefined {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/** A readable rendering of a byte path: valid UTF-8 runs as they are, other bytes as \xNN. */
export function displayBytes(bytes: Buffer): string {
  const direct = utf8Name(bytes);
  if (direct !== undefined) return direct;
  let out = '';
  for (const b of bytes) {
    out += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/**
 * Walks `root` (a directory, or a single file: then its own size and files = 1).
 *
 * @throws the fs error of the root or of an entry that vanished or cannot be read (ENOENT, EACCES…).
 */
export async function walkTree(root: string, opts: { hardLinks?: boolean } = {}): Promise<TreeStats> {
  const st = await lstat(root);
  const stats: TreeStats = {
    bytes: 0,
    files: 0,
    dirs: 0,
    hardLinks: [],
    nonUtf8Count: 0,
    nonUtf8Examples: [],
    special: {
      fifo: { count: 0, examples: [] },
      socket: { count: 0, examples: [] },
      'char-device': { count: 0, examples: [] },
      'block-device': { count: 0, examples: [] },
    },
  };
  if (!st.isDirectory()) {
    stats.bytes = st.size;
    stats.files = 1;
    return stats;
  }
  const rootBytes = Buffer.from(root);
  const inodes = new Map<string, { paths: string[]; lossy: boolean }>();
  // rel: the entry's path below the root as bytes (empty for the root); utf8: whether all of it is.
  const stack: { rel: Buffer; utf8: boolean }[] = [{ rel: Buffer.alloc(0), utf8: true }];
  while (stack.length > 0) {
    const { rel, utf8 } = stack.pop() as { rel: Buffer; utf8: boolean };
    stats.dirs++;
    const dir = await opendir(rel.length === 0 ? rootBytes : Buffer.concat([rootBytes, SLASH, rel]), {
      // Node accepts 'buffer' here (names as Buffers) but @types/node only lists string encodings.
      encoding: 'buffer' as BufferEncoding,
    });
    for await (const ent of dir) {
      const name = ent.name as unknown as Buffer; // encoding 'buffer': Node types Dirent names as strings
      const relPath = rel.length === 0 ? name : Buffer.concat([rel, SLASH, name]);
      const entUtf8 = utf8 && utf8Name(name) !== undefined;
      if (!entUtf8) {
        stats.nonUtf8Count++;
        if (stats.nonUtf8Examples.length < NON_UTF8_EXAMPLES)
          stats.nonUtf8Examples.push(displayBytes(relPath));
      }
      if (ent.isDirectory()) {
        stack.push({ rel: relPath, utf8: entUtf8 });
        continue;
      }
      const kind: SpecialKind | undefined = ent.isFIFO()
        ? 'fifo'
        : ent.isSocket()
          ? 'socket'
          : ent.isCharacterDevice()
            ? 'char-device'
            : ent.isBlockDevice()
              ? 'block-device'
              : undefined;
      if (kind !== undefined) {
        const k = stats.special[kind];
        k.count++;
        if (k.examples.length < NON_UTF8_EXAMPLES) k.examples.push(displayBytes(relPath));
      }
      const s = await lstat(Buffer.concat([rootBytes, SLASH, relPath]));
      stats.files++;
      stats.bytes += s.size;
      if (opts.hardLinks && s.isFile() && s.nlink > 1) {
        const key = `${s.dev}:${s.ino}`;
        const group = inodes.get(key) ?? { paths: [], lossy: false };
        group.paths.push(displayBytes(relPath));
        group.lossy ||= !entUtf8;
        inodes.set(key, group);
      }
    }
  }
  for (const g of inodes.values()) if (g.paths.length > 1 && !g.lossy) stats.hardLinks.push(g.paths.sort());
  return stats;
}
