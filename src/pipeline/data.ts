/**
 * Snapshotting one data source (a volume or a bind mount) while its unit is stopped, in either mode:
 * `direct` (Kopia reads the directory; a sidecar keeps what Kopia drops: xattrs, ACLs, hard links) or
 * `tar` (GNU tar streamed into `kopia snapshot create --stdin-file`).
 */
import { createWriteStream } from 'node:fs';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { KopiaError, type Kopia, type SnapshotManifest } from '../adapters/kopia.js';
import { lastLines, run, which } from '../adapters/process.js';
import type { VolumeMode } from '../config/types.js';
import type { PlannedSource } from '../core/plan.js';
import { escapeSegment } from '../core/sources.js';
import { KopiDockaError, errorMessage } from '../errors.js';
import { walkTree, type TreeStats } from './walk.js';
import type { DataSnapshot, SidecarInfo } from '../core/recipe-manifest.js';

export type { DataSnapshot, SidecarInfo };

export interface DataContext {
  kopia: Kopia;
  mode: VolumeMode;
  excludePatterns: string[];
  tarDeterministicMtime: boolean;
  sourceId: (kopiaPath: string) => string;
  tags: (src: PlannedSource) => Record<string, string>;
  /** Recipe staging directory: sidecars are written under it. */
  recipeDir: string;
  timeoutMs: number;
  /** The stall watchdog on Kopia (ms; 0 = off). */
  stallTimeoutMs: number;
  signal: AbortSignal;
  /** Live progress of a direct snapshot (Kopia's progress line); only wanted on a terminal. */
  onProgress?: ((src: PlannedSource, line: string) => void) | undefined;
}

export function tarArgv(
  hostPath: string,
  isFile: boolean,
  excludes: string[],
  deterministicMtime: boolean,
): string[] {
  const argv = [
    'tar',
    '-cf',
    '-',
    '--numeric-owner',
    '--xattrs',
    '--xattrs-include=*',
    '--acls',
    '--sort=name',
    // Holes are recorded as holes: a 1 GiB sparse disk image with 8 KiB of data stays that size.
    '--sparse',
  ];
  if (deterministicMtime) argv.push('--mtime=@0', '--clamp-mtime');
  for (const p of excludes) argv.push(`--exclude=${p}`);
  if (isFile) argv.push('-C', dirname(hostPath), '--', basename(hostPath));
  else argv.push('-C', hostPath, '--', '.');
  return argv;
}

export function streamNameFor(src: PlannedSource): string {
  const base = src.type === 'volume' ? src.name : basename(src.hostPath) || 'root';
  return `${base}.tar`;
}

async function captureSidecar(
  hostPath: string,
  tree: TreeStats,
  dir: string,
  signal: AbortSignal,
  timeoutMs: number,
): Promise<SidecarInfo> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const notes: string[] = [];
  await writeFile(join(dir, 'hardlinks.json'), JSON.stringify(tree.hardLinks, null, 1));
  const dump = async (tool: string, args: string[], file: string): Promise<boolean> => {
    if (!which(tool)) {
      notes.push(
        `${tool} is not installed: ${file === 'xattrs.txt' ? 'extended attributes' : 'ACLs'} not captured`,
      );
      return false;
    }
    const out = createWriteStream(join(dir, file), { mode: 0o600 });
    const done = new Promise<void>((resolve, reject) => {
      out.on('finish', resolve);
      out.on('error', reject);
    });
    // Containers are down while this runs: it gets the same time limit as the snapshot itself.
    const res = await run([tool, ...args], { cwd: hostPath, stdoutTo: out, signal, timeoutMs });
    await done;
    if (res.code !== 0) {
      notes.push(
        `${tool} exited ${String(res.code)}: ${res.stderrTail.trim().split('\n').slice(-1)[0] ?? ''}`,
      );
      return false;
    }
    return true;
  };
  // Relative names (cwd = the source) so the dump can be replayed onto any restore target; -h: a
  // symlink's own attributes, never its target's (a dangling link would otherwise fail the dump).
  const xattrs = await dump(
    'getfattr',
    ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'base64', '.'],
    'xattrs.txt',
  );
  const acls = await dump('getfacl', ['-R', '-P', '-n', '-s', '.'], 'acls.txt');
  return { dir, xattrs, acls, hardLinkGroups: tree.hardLinks.length, notes };
}

const quoted = (examples: string[]): string => examples.map((e) => JSON.stringify(e)).join(', ');

/** Why a source cannot be a Kopia directory snapshot without losing something (empty: it can). */
export function tarReasons(tree: TreeStats): string[] {
  const why: string[] = [];
  if (tree.nonUtf8Count > 0) {
    why.push(`${tree.nonUtf8Count} file name(s) are not UTF-8 (e.g. ${quoted(tree.nonUtf8Examples)})`);
  }
  const { fifo } = tree.special;
  if (fifo.count > 0) why.push(`${fifo.count} FIFO(s) (e.g. ${quoted(fifo.examples)})`);
  const devices = [tree.special['char-device'], tree.special['block-device']];
  const n = devices.reduce((sum, d) => sum + d.count, 0);
  if (n > 0) why.push(`${n} device node(s) (e.g. ${quoted(devices.flatMap((d) => d.examples))})`);
  return why;
}

/** Sockets are never backed up (tar skips them too): they exist only while their program runs. */
function socketNote(count: number, examples: string[]): string {
  return (
    `${count} socket(s) not backed up (e.g. ${quoted(examples)}): a socket only exists while its program ` +
    'runs, which creates it again on start'
  );
}

function checkComplete(m: SnapshotManifest, what: string): void {
  if (m.incomplete) throw new KopiDockaError(`snapshot of ${what} is incomplete (${m.incomplete})`);
}

export async function snapshotSource(src: PlannedSource, ctx: DataContext): Promise<DataSnapshot> {
  let st;
  try {
    st = await stat(src.hostPath);
  } catch (err) {
    throw new KopiDockaError(
      `${src.type} ${src.name}: source ${src.hostPath} is not readable: ${errorMessage(err)}`,
    );
  }
  const isFile = !st.isDirectory();
  const source = ctx.sourceId(src.kopiaPath);
  const tags = ctx.tags(src);
  const base = {
    key: src.key,
    type: src.type,
    name: src.name,
    hostPath: src.hostPath,
    kopiaPath: src.kopiaPath,
    isFile,
    usedBy: src.usedBy,
  };

  // What a Kopia directory snapshot cannot keep — names that are not UTF-8 (stored as U+FFFD), FIFOs
  // and devices (dropped by its "ignore unknown types" policy) — GNU tar keeps: such a source is
  // stored as a tar stream instead. The walk also feeds the sidecar (hard links), so in direct mode it
  // runs first, with the containers down.
  let mode = ctx.mode;
  const notes: string[] = [];
  let tree: TreeStats | undefined;
  if (mode === 'direct' && !isFile) {
    tree = await walkTree(src.hostPath, { hardLinks: true }).catch((err: unknown) => {
      throw new KopiDockaError(`${src.type} ${src.name}: cannot read ${src.hostPath}: ${errorMessage(err)}`);
    });
    const why = tarReasons(tree);
    if (why.length > 0) {
      mode = 'tar';
      notes.push(
        `${why.join('; ')}: stored as a tar stream instead of a directory snapshot, which keeps them as they are`,
      );
    }
    const sockets = tree.special.socket;
    if (sockets.count > 0) notes.push(socketNote(sockets.count, sockets.examples));
  }

  if (mode === 'direct') {
    const sidecarDir = join(ctx.recipeDir, 'sidecars', escapeSegment(src.key));
    const [manifest, sidecar] = await Promise.all([
      ctx.kopia.snapshotCreate(src.hostPath, {
        source,
        tags,
        timeoutMs: ctx.timeoutMs,
        stallTimeoutMs: ctx.stallTimeoutMs,
        signal: ctx.signal,
        ...(ctx.onProgress ? { onProgress: (l: string) => ctx.onProgress?.(src, l) } : {}),
      }),
      tree === undefined
        ? Promise.resolve(undefined)
        : captureSidecar(src.hostPath, tree, sidecarDir, ctx.signal, ctx.timeoutMs),
    ]);
    checkComplete(manifest, src.name);
    return {
      ...base,
      snapshotId: manifest.id,
      format: 'dir',
      sizeBytes: manifest.rootEntry.summ?.size ?? manifest.rootEntry.size ?? 0,
      files: manifest.rootEntry.summ?.files ?? (isFile ? 1 : 0),
      ...(sidecar ? { sidecar: { ...sidecar, dir: `sidecars/${escapeSegment(src.key)}` } } : {}),
    };
  }

  const streamName = streamNameFor(src);
  // The format tag says how to read the snapshot back (single-path restore relies on it): a direct-mode
  // source stored as a stream above is a tar snapshot too.
  const res = await ctx.kopia.snapshotCreateFromStream(
    tarArgv(src.hostPath, isFile, ctx.excludePatterns, ctx.tarDeterministicMtime),
    streamName,
    {
      source,
      tags: { ...tags, format: 'tar' },
      timeoutMs: ctx.timeoutMs,
      stallTimeoutMs: ctx.stallTimeoutMs,
      signal: ctx.signal,
    },
  );
  let manifest: SnapshotManifest | undefined;
  let parseError: unknown;
  try {
    manifest = ctx.kopia.parseSnapshotCreateOutput(res.kopia);
  } catch (err) {
    parseError = err;
  }
  if ((res.kopiaFailedFirst || res.kopia.stalled) && !res.producer.timedOut && !res.producer.aborted) {
    // Kopia gave up mid-stream (repository full or gone) and tar was stopped because of it: name the
    // cause, not tar's SIGTERM.
    throw ctx.kopia.stdinSnapshotFailure(res.kopia, src.hostPath);
  }
  if (res.producer.code !== 0) {
    // Kopia happily stores a truncated stream: it must never count as a restore point.
    const saved = manifest ?? (parseError instanceof KopiaError ? parseError.manifest : undefined);
    if (saved) await ctx.kopia.snapshotDelete([saved.id]).catch(() => undefined);
    const why = res.producer.timedOut
      ? 'timed out'
      : `exited ${String(res.producer.code ?? res.producer.signal)}`;
    throw new KopiDockaError(`tar of ${src.hostPath} ${why}: ${lastLines(res.producer.stderrTail)}`);
  }
  if (!manifest) throw parseError instanceof Error ? parseError : new KopiDockaError(String(parseError));
  checkComplete(manifest, src.name);
  if (tree === undefined) {
    // Without a walk (tar mode as configured), tar's own words tell which sockets it skipped.
    const skipped = res.producer.stderrTail
      .split('\n')
      // tar names itself by the path it was started as (/usr/bin/tar through setpriv).
      .map((l) => /^(?:\S*\/)?tar: (.*): socket ignored$/.exec(l.trim())?.[1])
      .filter((p): p is string => p !== undefined);
    if (skipped.length > 0) notes.push(socketNote(skipped.length, skipped.slice(0, 5)));
  }
  return {
    ...base,
    snapshotId: manifest.id,
    format: 'tar',
    streamName,
    sizeBytes: manifest.rootEntry.summ?.size ?? 0,
    files: manifest.rootEntry.summ?.files ?? 1,
    ...(notes.length > 0 ? { notes } : {}),
  };
}
