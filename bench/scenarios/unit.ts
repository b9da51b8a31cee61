/**
 * Figures 1–3 on one Compose unit (2 services, `init: true`, one volume each, the dataset split over
 * the two volumes), all in the same run and on the same data:
 *
 *  1. downtime (from Docker events) of the first backup, a second one with nothing changed and one
 *     with 1 % of the files rewritten — in `direct` and in `tar` mode, each next to a bare
 *     `docker stop` + `docker start` of the same containers measured in the same phase (the floor);
 *  2. full-backup throughput next to `kopia snapshot create` (and `tar | kopia --stdin-file`) run by
 *     hand on the same volumes into a fresh repository of the same kind;
 *  3. restore throughput of `kopi-docka restore --execute` next to `kopia snapshot restore`.
 *
 * Every repetition uses fresh repositories (a first backup is a first backup). The last repetition's
 * direct-mode repository and raw repository are kept for the restores.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { BenchContext, ScenarioResult } from '../lib/context.js';
import { mutate, planFiles, writeFiles, type FileSpec } from '../lib/dataset.js';
import {
  docker,
  downtimeFromEvents,
  downtimeFromState,
  removeProjectResources,
  settleEvents,
  volumeMountpoint,
} from '../lib/docker.js';
import {
  clearKdKopiaCache,
  createKd,
  kd,
  parseJsonOut,
  type KdInstance,
  type VolumeMode,
} from '../lib/kd.js';
import { RawKopia, type RawSnapshot } from '../lib/kopia.js';
import { flushDisk, mapLimit } from '../lib/proc.js';
import { figure, mbps, measure, type Figure } from '../lib/report.js';
import { treeBytes } from '../lib/tree.js';
import { pollPeak, type PeakPoller } from '../lib/rss.js';
import { uniqueName } from '../lib/cleanup.js';
import { compose } from '../lib/compose.js';

type Phase = 'full' | 'unchanged' | 'changed';
const PHASES: Phase[] = ['full', 'unchanged', 'changed'];

export interface Service {
  service: string;
  id: string;
}

export interface UnitStack {
  project: string;
  dir: string;
  /** In dependency order (db before app): start in this order, stop in reverse. */
  services: Service[];
  volumes: { name: string; mountpoint: string; files: FileSpec[] }[];
  bytes: number;
  files: number;
}

export interface DowntimeSample {
  /** Wall time of the whole command, ms. */
  wallMs: number;
  /** From Docker events: first die/stop to last start, ms. */
  downtimeMs: number;
  /** Cross-check from State.FinishedAt/StartedAt, ms. */
  stateMs: number;
  perContainerMs: Record<string, number>;
  /** kopi-docka's own figure (s), for comparison only. */
  reportedSec?: number;
  bytes?: number;
  /** Peak RSS (VmHWM) of the kopi-docka node process, MB. */
  peakRssMB?: number;
}

interface UnitRecordJson {
  unit: string;
  status: string;
  downtimeSec: number;
  bytes: number;
  error?: string;
}

function composeFile(image: string): string {
  const svc = (name: string, volume: string, dependsOn?: string) =>
    [
      `  ${name}:`,
      `    image: ${image}`,
      '    init: true',
      `    command: ["sh", "-c", "while :; do sleep 1; done"]`,
      ...(dependsOn ? ['    depends_on:', `      - ${dependsOn}`] : []),
      '    volumes:',
      `      - ${volume}:/data`,
    ].join('\n');
  return [
    "version: '2.4'",
    'services:',
    svc('db', 'data1'),
    svc('app', 'data2', 'db'),
    'volumes:',
    '  data1: {}',
    '  data2: {}',
    '',
  ].join('\n');
}

/** The 2-service Compose unit with the dataset split over its 2 volumes (`data`: default the unit size). */
export async function createUnitStack(
  ctx: BenchContext,
  data: { files: number; bytes: number; dirs: number } = ctx.sizes.unit,
): Promise<UnitStack> {
  const project = uniqueName('unit');
  const dir = await mkdtemp(path.join(ctx.tmpRoot, `${project}-`));
  ctx.cleanup.add(`compose project ${project}`, async () => {
    await compose(project, ['down', '-v', '--remove-orphans', '-t', '10'], {
      cwd: dir,
      allowFail: true,
      cleanup: true,
    });
    await removeProjectResources(project);
    await rm(dir, { recursive: true, force: true });
  });
  await writeFile(path.join(dir, 'docker-compose.yml'), composeFile(ctx.image));
  await compose(project, ['up', '-d'], { cwd: dir });
  const services: Service[] = [];
  for (const service of ['db', 'app']) {
    const r = await docker([
      'ps',
      '-aq',
      '--no-trunc',
      '--filter',
      `label=com.docker.compose.project=${project}`,
      '--filter',
      `label=com.docker.compose.service=${service}`,
    ]);
    const id = r.stdout.trim();
    if (!id || id.includes('\n'))
      throw new Error(`${project}: expected one ${service} container, got "${id}"`);
    services.push({ service, id });
  }
  const { files, bytes, dirs } = data;
  const all = planFiles({ files, bytes, dirs, seed: 1 });
  const volumes: UnitStack['volumes'] = [];
  for (const [i, v] of ['data1', 'data2'].entries()) {
    const name = `${project}_${v}`;
    const mine = all.filter((_, k) => k % 2 === i);
    volumes.push({ name, mountpoint: await volumeMountpoint(name), files: mine });
  }
  const t = performance.now();
  for (const v of volumes) await writeFiles(v.mountpoint, v.files);
  ctx.log(
    `unit ${project}: wrote ${String(files)} files, ${(bytes / 1e6).toFixed(0)} MB over 2 volumes in ${((performance.now() - t) / 1000).toFixed(1)} s`,
  );
  return { project, dir, services, volumes, bytes, files };
}

const ids = (s: UnitStack): string[] => s.services.map((x) => x.id);

export async function observe(s: UnitStack, sinceMs: number): Promise<Omit<DowntimeSample, 'wallMs'>> {
  const until = await settleEvents();
  const ev = await downtimeFromEvents(ids(s), sinceMs, until);
  return { downtimeMs: ev.ms, perContainerMs: ev.perContainer, stateMs: await downtimeFromState(ids(s)) };
}

/** The floor: `docker stop -t T` in reverse dependency order, then `docker start` in order. */
export async function floor(ctx: BenchContext, s: UnitStack): Promise<DowntimeSample> {
  const since = Date.now();
  const t0 = performance.now();
  for (const c of [...s.services].reverse()) await docker(['stop', '-t', String(ctx.stopTimeout), c.id]);
  for (const c of s.services) await docker(['start', c.id]);
  const wallMs = performance.now() - t0;
  return { wallMs, ...(await observe(s, since)) };
}

async function kdBackup(ctx: BenchContext, inst: KdInstance, s: UnitStack): Promise<DowntimeSample> {
  await flushDisk();
  const since = Date.now();
  let poller: PeakPoller | undefined;
  const r = await kd(ctx.cli, inst, ['backup', '--unit', s.project, '--json'], {
    onSpawn: (pid) => (poller = pollPeak(pid)),
  }).catch(async (err: unknown) => {
    await poller?.stop();
    throw err;
  });
  const peak = await poller?.stop();
  const rec = parseJsonOut<{ units: UnitRecordJson[] }>(r);
  const u = rec.units.find((x) => x.unit === s.project);
  if (!u || u.status !== 'ok') throw new Error(`backup of ${s.project} not ok: ${JSON.stringify(u)}`);
  return {
    wallMs: r.ms,
    ...(await observe(s, since)),
    reportedSec: u.downtimeSec,
    bytes: u.bytes,
    ...(peak ? { peakRssMB: peak.hwm / 1e6 } : {}),
  };
}

export async function newRaw(
  ctx: BenchContext,
  label: string,
): Promise<{ raw: RawKopia; remove: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(ctx.tmpRoot, `raw-${label}-`));
  const remove = ctx.cleanup.add(`raw kopia ${dir}`, () => rm(dir, { recursive: true, force: true }));
  const raw = new RawKopia(dir, 'raw-bench-password', 'zstd');
  await raw.create();
  return { raw, remove };
}

/** Snapshot each volume by hand, as many at once as kopi-docka's parallel_workers. */
export async function rawBackup(
  ctx: BenchContext,
  s: UnitStack,
  raw: RawKopia,
  mode: VolumeMode,
): Promise<{ ms: number; snapshots: RawSnapshot[] }> {
  await flushDisk();
  const t0 = performance.now();
  const snapshots = await mapLimit(s.volumes, ctx.parallelWorkers, (v) =>
    mode === 'direct' ? raw.snapshotDir(v.mountpoint) : raw.snapshotTar(v.mountpoint, `${v.name}.tar`),
  );
  return { ms: performance.now() - t0, snapshots };
}

interface RestoreSample {
  wallMs: number;
  /** From the first "restoring …" log line to the last script's "restored … from snapshot". */
  dataMs: number;
  bytes: number;
}

async function restoredBytes(s: UnitStack): Promise<number> {
  let total = 0;
  for (const v of s.volumes) total += (await treeBytes(await volumeMountpoint(v.name))).bytes;
  return total;
}

async function kdRestore(ctx: BenchContext, inst: KdInstance, s: UnitStack): Promise<RestoreSample> {
  const to = await mkdtemp(path.join(ctx.tmpRoot, 'kd-restore-'));
  try {
    await clearKdKopiaCache(inst);
    await flushDisk();
    const r = await kd(ctx.cli, inst, [
      'restore',
      '--unit',
      s.project,
      '--backup-id',
      'latest',
      '--to',
      to,
      '--execute',
      '--yes',
    ]);
    const first = r.lines.find((l) => /\brestoring (volume|bind) /.test(l.text));
    const last = r.lines.filter((l) => /\brestored \S+ from snapshot /.test(l.text)).at(-1);
    if (!first || !last)
      throw new Error(`restore: cannot find the data restore in its log:\n${r.stderr.slice(-2000)}`);
    const bytes = await restoredBytes(s);
    if (bytes !== s.bytes)
      throw new Error(`restore: ${String(bytes)} bytes restored, expected ${String(s.bytes)}`);
    return { wallMs: r.ms, dataMs: last.t - first.t, bytes };
  } finally {
    await rm(to, { recursive: true, force: true });
    // Next repetition restores into absent volumes again (no safety copy, nothing to replace).
    await docker(['volume', 'rm', '-f', ...s.volumes.map((v) => v.name)], { allowFail: true, cleanup: true });
  }
}

async function rawRestore(
  ctx: BenchContext,
  raw: RawKopia,
  snaps: RawSnapshot[],
  expect: number,
): Promise<RestoreSample> {
  const dir = await mkdtemp(path.join(ctx.tmpRoot, 'raw-restore-'));
  try {
    await raw.clearCache();
    await flushDisk();
    const t0 = performance.now();
    for (const [i, snap] of snaps.entries()) await raw.restore(snap.id, path.join(dir, String(i)));
    const ms = performance.now() - t0;
    const { bytes } = await treeBytes(dir);
    if (bytes !== expect) throw new Error(`raw restore: ${String(bytes)} bytes, expected ${String(expect)}`);
    return { wallMs: ms, dataMs: ms, bytes };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const PHASE_LABEL: Record<Phase, string> = {
  full: 'first backup',
  unchanged: 'second backup, nothing changed',
  changed: 'second backup, 1 % of files changed',
};

export async function unitScenario(ctx: BenchContext, defaultMode: string): Promise<ScenarioResult> {
  const s = await createUnitStack(ctx);
  const reps = ctx.sizes.reps;
  const floorS: Record<Phase, DowntimeSample[]> = { full: [], unchanged: [], changed: [] };
  const kdS: Record<VolumeMode, Record<Phase, DowntimeSample[]>> = {
    direct: { full: [], unchanged: [], changed: [] },
    tar: { full: [], unchanged: [], changed: [] },
  };
  const rawS: Record<VolumeMode, number[]> = { direct: [], tar: [] };
  const changedFiles: number[] = [];
  let keep: { inst: KdInstance; raw: RawKopia; rawSnaps: RawSnapshot[] } | undefined;

  for (let rep = 0; rep < reps; rep++) {
    ctx.log(`unit: repetition ${String(rep + 1)}/${String(reps)}`);
    // Setup (not measured) in parallel: two kopi-docka instances (`init`) and two raw repositories.
    const [kdDirect, kdTar, rawD, rawT] = await Promise.all([
      createKd({ ...kdOpts(ctx), label: 'direct', mode: 'direct' }),
      createKd({ ...kdOpts(ctx), label: 'tar', mode: 'tar' }),
      newRaw(ctx, 'direct'),
      newRaw(ctx, 'tar'),
    ]);
    const inst: Record<VolumeMode, KdInstance> = { direct: kdDirect, tar: kdTar };
    // Alternate which mode goes first, so neither always runs right after the data was touched.
    const order: VolumeMode[] = rep % 2 === 0 ? ['direct', 'tar'] : ['tar', 'direct'];
    let rawDirSnaps: RawSnapshot[] = [];
    for (const phase of PHASES) {
      if (phase === 'changed') {
        let n = 0;
        for (const [i, v] of s.volumes.entries()) {
          n += (await mutate(v.mountpoint, v.files, ctx.sizes.unit.changeFraction, 1000 + rep * 10 + i))
            .length;
        }
        changedFiles.push(n);
      }
      floorS[phase].push(await floor(ctx, s));
      for (const mode of order) {
        const x = await kdBackup(ctx, inst[mode], s);
        kdS[mode][phase].push(x);
        ctx.log(
          `  ${phase} ${mode}: down ${(x.downtimeMs / 1000).toFixed(2)} s (floor ${((floorS[phase].at(-1)?.downtimeMs ?? 0) / 1000).toFixed(2)} s), command ${(x.wallMs / 1000).toFixed(2)} s`,
        );
      }
      if (phase === 'full') {
        const d = await rawBackup(ctx, s, rawD.raw, 'direct');
        const t = await rawBackup(ctx, s, rawT.raw, 'tar');
        rawS.direct.push(d.ms);
        rawS.tar.push(t.ms);
        rawDirSnaps = d.snapshots;
        ctx.log(`  raw kopia: dir ${(d.ms / 1000).toFixed(2)} s, tar|stdin ${(t.ms / 1000).toFixed(2)} s`);
      }
    }
    await inst.tar.remove();
    await rawT.remove();
    if (rep === reps - 1) keep = { inst: inst.direct, raw: rawD.raw, rawSnaps: rawDirSnaps };
    else {
      await inst.direct.remove();
      await rawD.remove();
    }
  }

  // 3. Restores: the unit is removed (containers and volumes), then restored into absent volumes.
  await compose(s.project, ['down', '-v', '-t', String(ctx.stopTimeout)], { cwd: s.dir });
  const kdR: RestoreSample[] = [];
  const rawR: RestoreSample[] = [];
  if (!keep) throw new Error('no repository kept for the restores');
  for (let rep = 0; rep < reps; rep++) {
    const kdFirst = rep % 2 === 0;
    if (kdFirst) kdR.push(await kdRestore(ctx, keep.inst, s));
    rawR.push(await rawRestore(ctx, keep.raw, keep.rawSnaps, s.bytes));
    if (!kdFirst) kdR.push(await kdRestore(ctx, keep.inst, s));
    ctx.log(
      `restore ${String(rep + 1)}/${String(reps)}: kopi-docka data ${((kdR.at(-1)?.dataMs ?? 0) / 1000).toFixed(2)} s (command ${((kdR.at(-1)?.wallMs ?? 0) / 1000).toFixed(2)} s), raw ${((rawR.at(-1)?.wallMs ?? 0) / 1000).toFixed(2)} s`,
    );
  }

  return {
    figures: unitFigures(ctx, s, defaultMode, floorS, kdS, rawS, kdR, rawR),
    details: {
      project: s.project,
      dataset: {
        files: s.files,
        bytes: s.bytes,
        volumes: s.volumes.map((v) => ({
          name: v.name,
          files: v.files.length,
          bytes: v.files.reduce((a, f) => a + f.size, 0),
        })),
      },
      parallelWorkers: ctx.parallelWorkers,
      changedFilesPerRep: changedFiles,
      floor: floorS,
      kopiDocka: kdS,
      rawBackupMs: rawS,
      restore: { kopiDocka: kdR, raw: rawR },
    },
  };
}

export function kdOpts(ctx: BenchContext) {
  return { cli: ctx.cli, tmpRoot: ctx.tmpRoot, cleanup: ctx.cleanup, stopTimeout: ctx.stopTimeout };
}

function unitFigures(
  ctx: BenchContext,
  s: UnitStack,
  defaultMode: string,
  floorS: Record<Phase, DowntimeSample[]>,
  kdS: Record<VolumeMode, Record<Phase, DowntimeSample[]>>,
  rawS: Record<VolumeMode, number[]>,
  kdR: RestoreSample[],
  rawR: RestoreSample[],
): Figure[] {
  const mb = (s.bytes / 1e6).toFixed(s.bytes >= 1e8 ? 0 : 1);
  const sec1 = `1. Downtime per unit (${mb} MB in ${String(s.files)} files, 2 volumes, 2 containers)`;
  const out: Figure[] = [];
  const down = (xs: DowntimeSample[]) => xs.map((x) => x.downtimeMs);
  for (const phase of PHASES) {
    const fl = measure('bare docker stop + docker start (floor)', down(floorS[phase]));
    for (const mode of ['direct', 'tar'] as const) {
      const v = measure(`kopi-docka backup (${mode})`, down(kdS[mode][phase]));
      const f = figure({
        id: `downtime.${phase}.${mode}-vs-floor`,
        section: sec1,
        what: `${PHASE_LABEL[phase]} — ${mode}`,
        unit: 'ms',
        better: 'lower',
        value: v,
        baseline: fl,
      });
      if (phase === 'unchanged' && mode === 'direct') {
        f.target = { text: '≤ floor + 2 s', met: v.median <= fl.median + 2000 };
      }
      out.push(f);
    }
    const d = measure('kopi-docka backup (direct)', down(kdS.direct[phase]));
    const t = measure('kopi-docka backup (tar)', down(kdS.tar[phase]));
    const cmp = figure({
      id: `downtime.${phase}.direct-vs-tar`,
      section: sec1,
      what: `${PHASE_LABEL[phase]} — direct vs tar mode`,
      unit: 'ms',
      better: 'lower',
      value: d,
      baseline: { ...t, label: 'same unit in tar mode' },
    });
    if (phase !== 'full') {
      const winner = d.median <= t.median ? 'direct' : 'tar';
      cmp.target = {
        text: `lower one is the default (${defaultMode}); here: ${winner}`,
        met: winner === defaultMode,
      };
    }
    out.push(cmp);
  }

  const sec2 = `2. Full backup throughput (${mb} MB, first backup into a fresh repository)`;
  const tput = (xs: number[]) => xs.map((ms) => mbps(s.bytes, ms));
  const rawLabel: Record<VolumeMode, string> = {
    direct: `kopia snapshot create <volume dir> by hand (${String(ctx.parallelWorkers)} at once)`,
    tar: `tar … | kopia snapshot create --stdin-file by hand (${String(ctx.parallelWorkers)} at once)`,
  };
  for (const mode of ['direct', 'tar'] as const) {
    const raw = measure(rawLabel[mode], tput(rawS[mode]));
    const whole = figure({
      id: `throughput.${mode}.command`,
      section: sec2,
      what: `${mode}: whole \`kopi-docka backup\` command`,
      unit: 'MB/s',
      better: 'higher',
      value: measure(`kopi-docka backup (${mode}), wall time`, tput(kdS[mode].full.map((x) => x.wallMs))),
      baseline: raw,
    });
    whole.target = { text: '≥ 0.9× raw', met: whole.ratio >= 0.9 };
    out.push(whole);
    out.push(
      figure({
        id: `throughput.${mode}.downtime-window`,
        section: sec2,
        what: `${mode}: while the unit is down (stop → snapshots → start)`,
        unit: 'MB/s',
        better: 'higher',
        value: measure(
          `kopi-docka backup (${mode}), downtime`,
          tput(kdS[mode].full.map((x) => x.downtimeMs)),
        ),
        baseline: raw,
      }),
    );
  }

  const sec3 = `3. Restore throughput (${mb} MB, 2 volumes, Kopia cache emptied first, into absent/empty targets)`;
  const rawRestore = measure(
    'kopia snapshot restore <id> <empty dir> by hand, one after the other',
    rawR.map((x) => mbps(x.bytes, x.wallMs)),
  );
  const data = figure({
    id: 'restore.data',
    section: sec3,
    what: '`kopi-docka restore --execute --yes`: the data restore',
    unit: 'MB/s',
    better: 'higher',
    value: measure(
      'kopi-docka restore, data part',
      kdR.map((x) => mbps(x.bytes, x.dataMs)),
    ),
    baseline: rawRestore,
  });
  data.target = { text: '≥ 0.9× raw', met: data.ratio >= 0.9 };
  out.push(data);
  out.push(
    figure({
      id: 'restore.command',
      section: sec3,
      what: '`kopi-docka restore --execute --yes`: whole command (recipe, scripts, data)',
      unit: 'MB/s',
      better: 'higher',
      value: measure(
        'kopi-docka restore, wall time',
        kdR.map((x) => mbps(x.bytes, x.wallMs)),
      ),
      baseline: rawRestore,
    }),
  );
  return out;
}
