/**
 * A streaming walk of a directory tree with lstat (never follows symlinks): total size, file count and
 * hard-link groups. Used for dry-run sizes and for the direct-mode sidecar (Kopia does not keep hard links).
 */
import { lstat, opendir } from 'node:fs/promises';
import { join } from 'node:path';

export interface TreeStats {
  bytes: number;
  files: number;
  dirs: number;
  /** Groups of paths (relative to the root) that share one inode; only groups of 2+. */
  hardLinks: string[][];
}

export async function walkTree(root: string, opts: { hardLinks?: boolean } = {}): Promise<TreeStats> {
  const st = await lstat(root);
  const stats: TreeStats = { bytes: 0, files: 0, dirs: 0, hardLinks: [] };
  if (!st.isDirectory()) {
    stats.bytes = st.size;
    stats.files = 1;
    return stats;
  }
  const inodes = new Map<string, string[]>();
  const stack: string[] = [''];
  while (stack.length > 0) {
    const rel = stack.pop() as string;
    stats.dirs++;
    const dir = await opendir(join(root, rel));
    for await (const ent of dir) {
      const relPath = rel === '' ? ent.name : `${rel}/${ent.name}`;
      if (ent.isDirectory()) {
        stack.push(relPath);
        continue;
      }
      const s = await lstat(join(root, relPath));
      stats.files++;
      stats.bytes += s.size;
      if (opts.hardLinks && s.isFile() && s.nlink > 1) {
        const key = `${s.dev}:${s.ino}`;
        const group = inodes.get(key);
        if (group) group.push(relPath);
        else inodes.set(key, [relPath]);
      }
    }
  }
  for (const g of inodes.values()) if (g.length > 1) stats.hardLinks.push(g.sort());
  return stats;
}
