/**
 * Benchmark data: random (incompressible, never deduplicated) file contents of varied sizes, written
 * straight into Docker volumes' mountpoints (the benchmark runs as root, like kopi-docka). Sizes come
 * from a seeded generator, so every run of a given size builds the same tree shape.
 */
import { randomFill } from 'node:crypto';
import { open, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const randomFillP = promisify(randomFill);

export interface FileSpec {
  /** Path relative to the volume root. */
  rel: string;
  size: number;
}

export interface DatasetSpec {
  files: number;
  bytes: number;
  /** Files are spread over this many subdirectories (nested two levels). */
  dirs: number;
  seed: number;
}

/** mulberry32: a small deterministic PRNG (sizes and choices only — contents are crypto-random). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `files` files whose sizes are log-uniform over a 1:4096 range, scaled so they add up to exactly
 * `bytes` — many small files, a few large ones, like real application data.
 */
export function planFiles(spec: DatasetSpec): FileSpec[] {
  const rnd = prng(spec.seed);
  const weights = Array.from({ length: spec.files }, () => Math.exp(rnd() * Math.log(4096)));
  const total = weights.reduce((a, b) => a + b, 0);
  const sizes = weights.map((w) => Math.max(1, Math.floor((w / total) * spec.bytes)));
  // Put the rounding remainder on the largest file so the total is exact.
  const big = sizes.indexOf(Math.max(...sizes));
  sizes[big] = (sizes[big] ?? 0) + spec.bytes - sizes.reduce((a, b) => a + b, 0);
  const dirs = Math.max(1, spec.dirs);
  return sizes.map((size, i) => {
    const d = i % dirs;
    return {
      rel: path.join(`d${String(d % 10)}`, `d${String(d)}`, `f${String(i).padStart(6, '0')}.bin`),
      size,
    };
  });
}

const CHUNK = 4 << 20;

/** Write `size` random bytes to `file` (created or truncated). */
async function writeRandom(file: string, size: number, buf: Buffer): Promise<void> {
  const fh = await open(file, 'w', 0o644);
  try {
    let left = size;
    while (left > 0) {
      const n = Math.min(left, buf.length);
      const view = buf.subarray(0, n);
      await randomFillP(view);
      await fh.write(view, 0, n);
      left -= n;
    }
  } finally {
    await fh.close();
  }
}

export async function writeFiles(root: string, files: readonly FileSpec[]): Promise<void> {
  const buf = Buffer.allocUnsafe(CHUNK);
  const made = new Set<string>();
  for (const f of files) {
    const file = path.join(root, f.rel);
    const dir = path.dirname(file);
    if (!made.has(dir)) {
      await mkdir(dir, { recursive: true });
      made.add(dir);
    }
    await writeRandom(file, f.size, buf);
  }
}

/**
 * Rewrite `fraction` of the files (chosen with `seed`) with new random content of the same size:
 * what "1 % of files changed" means here. Returns the files changed.
 */
export async function mutate(
  root: string,
  files: readonly FileSpec[],
  fraction: number,
  seed: number,
): Promise<FileSpec[]> {
  const rnd = prng(seed);
  const n = Math.max(1, Math.round(files.length * fraction));
  const picked = new Set<number>();
  while (picked.size < Math.min(n, files.length)) picked.add(Math.floor(rnd() * files.length));
  const chosen = [...picked].map((i) => files[i] as FileSpec);
  const buf = Buffer.allocUnsafe(CHUNK);
  for (const f of chosen) await writeRandom(path.join(root, f.rel), f.size, buf);
  return chosen;
}
