import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';

/** Sum of regular file sizes and their count under `root` (no symlinks followed). */
export async function treeBytes(root: string): Promise<{ bytes: number; files: number }> {
  let bytes = 0;
  let files = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        bytes += (await lstat(p)).size;
        files++;
      }
    }
  };
  await walk(root);
  return { bytes, files };
}
