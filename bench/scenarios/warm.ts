/**
 * Figures 6–9 (#14): the warm pass and the fixed cost of a run, on the Compose unit of figure 1 at two
 * sizes (the unit size, 1 GiB / 10,000 files, and 4× its bytes in as many files), in `direct` mode, all
 * in the same run and on the same data:
 *
 *  6. downtime of a FIRST backup with the warm pass (`warm_pass = auto`, the default; `always` at smoke
 *     size, where `auto` finds the sources too small) and without it (`never`), each into a fresh
 *     repository, next to the bare stop+start floor of the same phase; and the same in `tar` mode at the
 *     unit size (what the warm pass can and cannot do for a stream);
 *  7. downtime of a backup after 1 % of the files were rewritten, next to the floor plus what Kopia by
 *     hand needs for the same incremental snapshot (`kopia snapshot create` of the changed volumes into
 *     its own repository, which read the same first snapshot);
 *  8. whole-command wall time of the first backup (warm pass included) and of an unchanged second one,
 *     next to `kopia snapshot create` by hand on the same volumes (2 at once);
 *  9. the `kopia` processes each run starts that open the repository, counted by a wrapper put in front
 *     of Kopia (KOPI_DOCKA_KOPIA_BIN), with the seconds they took.
 */
import { chmod, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { BenchContext, ScenarioResult } from '../lib/context.js';
import { GiB } from '../lib/context.js';
import { mutate } from '../lib/dataset.js';
import { createKd, kd, parseJsonOut, type KdInstance, type VolumeMode } from '../lib/kd.js';
import { KOPIA_BIN } from '../lib/kopia.js';
import { flushDisk } from '../lib/proc.js';
import { figure, mbps, measure, type Figure } from '../lib/report.js';
import {
  createUnitStack,
  floor,
  kdOpts,
  newRaw,
  observe,
  rawBackup,
  type DowntimeSample,
  type UnitStack,
} from './unit.js';

interface RunSample extends DowntimeSample {
  /** kopia processes that opened the repository, and their summed wall time (ms). */
  kopiaProcesses: number;
  kopiaMs: number;
  /** Each call in order: subcommand (e.g. `snapshot create`), when it started after the command did
   * and how long it took (ms), for the JSON. */
  kopiaCalls: { sub: string; atMs: number; ms: number }[];
}

/** A wrapper in front of Kopia that appends `<start ns> <end ns> <exit> <subcommand>` per call. */
async function countingKopia(ctx: BenchContext): Promise<string> {
  const file = path.join(ctx.tmpRoot, 'kopia-counting');
  await writeFile(
    file,
    [
      '#!/bin/bash',
      's=$(date +%s%N); "$KDB_REAL_KOPIA" "$@"; rc=$?; e=$(date +%s%N)',
      // The first two words that are not flags: the subcommand (never a secret: the password is env).
      'sub=""; n=0; for a in "$@"; do case "$a" in -*) ;; *) sub="$sub $a"; n=$((n+1)); [ $n -ge 2 ] && break;; esac; done',
      'echo "$s $e $rc$sub" >> "$KDB_KOPIA_LOG"; exit $rc',
      '',
    ].join('\n'),
  );
  await chmod(file, 0o755);
  return file;
}

async function backup(
  ctx: BenchContext,
  inst: KdInstance,
  s: UnitStack,
  wrapper: string,
): Promise<RunSample> {
  const log = path.join(inst.dir, `kopia-calls-${String(Date.now())}.log`);
  await flushDisk();
  const since = Date.now();
  const r = await kd(ctx.cli, inst, ['backup', '--unit', s.project, '--json'], {
    env: { KOPI_DOCKA_KOPIA_BIN: wrapper, KDB_REAL_KOPIA: KOPIA_BIN, KDB_KOPIA_LOG: log },
  });
  const rec = parseJsonOut<{ units: { unit: string; status: string; downtimeSec: number; bytes: number }[] }>(
    r,
  );
  const u = rec.units.find((x) => x.unit === s.project);
  if (!u || u.status !== 'ok') throw new Error(`backup of ${s.project} not ok: ${JSON.stringify(u)}`);
  const calls = (await readFile(log, 'utf8').catch(() => ''))
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [start, end, , ...sub] = l.split(' ');
      return {
        sub: sub.join(' '),
        atMs: Math.round(Number(start) / 1e6 - since),
        ms: Math.round((Number(end) - Number(start)) / 1e6),
      };
    })
    // `kopia --version` does not open the repository.
    .filter((c) => c.sub !== '');
  await rm(log, { force: true });
  return {
    wallMs: r.ms,
    ...(await observe(s, since)),
    reportedSec: u.downtimeSec,
    bytes: u.bytes,
    kopiaProcesses: calls.length,
    kopiaMs: calls.reduce((a, c) => a + c.ms, 0),
    kopiaCalls: calls,
  };
}

interface SizeResult {
  label: string;
  bytes: number;
  files: number;
  floorFirst: DowntimeSample[];
  floorUnchanged: DowntimeSample[];
  floorChanged: DowntimeSample[];
  never: RunSample[];
  warm: RunSample[];
  warmUnchanged: RunSample[];
  warmChanged: RunSample[];
  rawFirstMs: number[];
  rawUnchangedMs: number[];
  rawChangedMs: number[];
  tarNever: RunSample[];
  tarWarm: RunSample[];
}

async function measureSize(
  ctx: BenchContext,
  data: { files: number; bytes: number; dirs: number },
  withTar: boolean,
  wrapper: string,
): Promise<SizeResult> {
  const s = await createUnitStack(ctx, data);
  const warmMode = ctx.sizes.name === 'smoke' ? 'always' : 'auto';
  const label = `${(s.bytes / GiB).toFixed(s.bytes >= GiB ? 0 : 3)} GiB / ${String(s.files)} files`;
  const r: SizeResult = {
    label,
    bytes: s.bytes,
    files: s.files,
    floorFirst: [],
    floorUnchanged: [],
    floorChanged: [],
    never: [],
    warm: [],
    warmUnchanged: [],
    warmChanged: [],
    rawFirstMs: [],
    rawUnchangedMs: [],
    rawChangedMs: [],
    tarNever: [],
    tarWarm: [],
  };
  for (let rep = 0; rep < ctx.sizes.reps; rep++) {
    ctx.log(`warm ${label}: repetition ${String(rep + 1)}/${String(ctx.sizes.reps)}`);
    const make = (label2: string, mode: VolumeMode, warmPass: 'auto' | 'always' | 'never') =>
      createKd({ ...kdOpts(ctx), label: label2, mode, warmPass });
    const [kdNever, kdWarm, raw] = await Promise.all([
      make('never', 'direct', 'never'),
      make('warm', 'direct', warmMode),
      newRaw(ctx, 'warm'),
    ]);
    // First backups: which one goes first alternates.
    r.floorFirst.push(await floor(ctx, s));
    for (const which of rep % 2 === 0 ? ['never', 'warm'] : ['warm', 'never']) {
      const x = await backup(ctx, which === 'never' ? kdNever : kdWarm, s, wrapper);
      (which === 'never' ? r.never : r.warm).push(x);
      ctx.log(
        `  first ${which}: down ${(x.downtimeMs / 1000).toFixed(2)} s (floor ${((r.floorFirst.at(-1)?.downtimeMs ?? 0) / 1000).toFixed(2)} s), command ${(x.wallMs / 1000).toFixed(2)} s, ${String(x.kopiaProcesses)} kopia processes (${(x.kopiaMs / 1000).toFixed(2)} s)`,
      );
    }
    await kdNever.remove();
    const rawFirst = await rawBackup(ctx, s, raw.raw, 'direct');
    r.rawFirstMs.push(rawFirst.ms);
    // Unchanged second backup, and Kopia's own second snapshot.
    r.floorUnchanged.push(await floor(ctx, s));
    const u = await backup(ctx, kdWarm, s, wrapper);
    r.warmUnchanged.push(u);
    r.rawUnchangedMs.push((await rawBackup(ctx, s, raw.raw, 'direct')).ms);
    ctx.log(
      `  unchanged: down ${(u.downtimeMs / 1000).toFixed(2)} s, command ${(u.wallMs / 1000).toFixed(2)} s (raw ${((r.rawUnchangedMs.at(-1) ?? 0) / 1000).toFixed(2)} s), ${String(u.kopiaProcesses)} kopia processes`,
    );
    // 1 % of the files rewritten.
    for (const [i, v] of s.volumes.entries()) {
      await mutate(v.mountpoint, v.files, ctx.sizes.unit.changeFraction, 5000 + rep * 10 + i);
    }
    r.floorChanged.push(await floor(ctx, s));
    const c = await backup(ctx, kdWarm, s, wrapper);
    r.warmChanged.push(c);
    r.rawChangedMs.push((await rawBackup(ctx, s, raw.raw, 'direct')).ms);
    ctx.log(
      `  1 % changed: down ${(c.downtimeMs / 1000).toFixed(2)} s (floor ${((r.floorChanged.at(-1)?.downtimeMs ?? 0) / 1000).toFixed(2)} s, raw incremental ${((r.rawChangedMs.at(-1) ?? 0) / 1000).toFixed(2)} s)`,
    );
    await kdWarm.remove();
    await raw.remove();
    if (withTar) {
      const [tNever, tWarm] = await Promise.all([
        make('tar-never', 'tar', 'never'),
        make('tar-warm', 'tar', warmMode),
      ]);
      for (const which of rep % 2 === 0 ? ['never', 'warm'] : ['warm', 'never']) {
        const x = await backup(ctx, which === 'never' ? tNever : tWarm, s, wrapper);
        (which === 'never' ? r.tarNever : r.tarWarm).push(x);
        ctx.log(
          `  tar first ${which}: down ${(x.downtimeMs / 1000).toFixed(2)} s, command ${(x.wallMs / 1000).toFixed(2)} s`,
        );
      }
      await tNever.remove();
      await tWarm.remove();
    }
  }
  return r;
}

export async function warmScenario(ctx: BenchContext): Promise<ScenarioResult> {
  const wrapper = await countingKopia(ctx);
  const base = ctx.sizes.unit;
  const small = await measureSize(ctx, base, true, wrapper);
  const big = await measureSize(ctx, { ...base, bytes: base.bytes * 4 }, false, wrapper);
  return { figures: warmFigures(ctx, [small, big]), details: { sizes: [small, big] } };
}

function warmFigures(ctx: BenchContext, sizes: SizeResult[]): Figure[] {
  const out: Figure[] = [];
  const down = (xs: DowntimeSample[]) => xs.map((x) => x.downtimeMs);
  const warmLabel = ctx.sizes.name === 'smoke' ? 'always' : 'auto';
  const sec6 = '6. Warm pass: downtime of a first backup (direct mode unless said)';
  for (const r of sizes) {
    const fl = measure('bare docker stop + docker start (floor)', down(r.floorFirst));
    const w = measure(`kopi-docka backup, warm_pass = ${warmLabel}`, down(r.warm));
    const n = measure('kopi-docka backup, warm_pass = never', down(r.never));
    const f = figure({
      id: `warm.first.${String(r.bytes)}.warm-vs-floor`,
      section: sec6,
      what: `${r.label}: with the warm pass (${warmLabel})`,
      unit: 'ms',
      better: 'lower',
      value: w,
      baseline: fl,
    });
    f.target = { text: '≤ floor + 1 s', met: w.median <= fl.median + 1000 };
    out.push(f);
    out.push(
      figure({
        id: `warm.first.${String(r.bytes)}.never-vs-floor`,
        section: sec6,
        what: `${r.label}: without the warm pass (never)`,
        unit: 'ms',
        better: 'lower',
        value: n,
        baseline: fl,
      }),
    );
    out.push(
      figure({
        id: `warm.first.${String(r.bytes)}.warm-vs-never`,
        section: sec6,
        what: `${r.label}: with vs without the warm pass`,
        unit: 'ms',
        better: 'lower',
        value: w,
        baseline: { ...n, label: 'same first backup without the warm pass' },
      }),
    );
    if (r.tarWarm.length > 0) {
      out.push(
        figure({
          id: `warm.first.${String(r.bytes)}.tar-warm-vs-never`,
          section: sec6,
          what: `${r.label}, tar mode: with vs without the warm pass`,
          unit: 'ms',
          better: 'lower',
          value: measure(`kopi-docka backup (tar), warm_pass = ${warmLabel}`, down(r.tarWarm)),
          baseline: measure('same first backup (tar) without the warm pass', down(r.tarNever)),
        }),
      );
    }
  }
  const sec7 = '7. Downtime after 1 % of the files changed (direct)';
  for (const r of sizes) {
    const fl = measure('bare docker stop + docker start (floor)', down(r.floorChanged));
    const rawInc = measure('kopia snapshot create by hand, same change (incremental)', r.rawChangedMs);
    const v = measure('kopi-docka backup', down(r.warmChanged));
    const f = figure({
      id: `warm.changed.${String(r.bytes)}`,
      section: sec7,
      what: `${r.label}: 1 % of files rewritten (floor ${(fl.median / 1000).toFixed(2)} s)`,
      unit: 'ms',
      better: 'lower',
      value: v,
      baseline: {
        ...fl,
        label: `floor + 0.5 s + Kopia's incremental snapshot by hand (${(rawInc.median / 1000).toFixed(2)} s)`,
        median: fl.median + 500 + rawInc.median,
      },
    });
    f.target = { text: '≤ floor + 0.5 s + Kopia by hand', met: f.ratio <= 1 };
    out.push(f);
  }
  const sec8 = '8. Whole command vs `kopia snapshot create` by hand (direct, 2 volumes, 2 at once)';
  for (const r of sizes) {
    const raw = measure(
      'kopia snapshot create <volume dir> by hand',
      r.rawFirstMs.map((ms) => mbps(r.bytes, ms)),
    );
    const f = figure({
      id: `warm.command.first.${String(r.bytes)}`,
      section: sec8,
      what: `${r.label}: first backup, whole command incl. the warm pass`,
      unit: 'MB/s',
      better: 'higher',
      value: measure(
        'kopi-docka backup, wall time',
        r.warm.map((x) => mbps(r.bytes, x.wallMs)),
      ),
      baseline: raw,
    });
    f.target = { text: '≥ 0.85× raw', met: f.ratio >= 0.85 };
    out.push(f);
    const fl = measure(
      'bare stop + start',
      r.floorUnchanged.map((x) => x.wallMs),
    );
    const u = measure(
      'kopi-docka backup, wall time',
      r.warmUnchanged.map((x) => x.wallMs),
    );
    const g = figure({
      id: `warm.command.unchanged.${String(r.bytes)}`,
      section: sec8,
      what: `${r.label}: unchanged second backup, whole command (Kopia by hand: ${(measure('', r.rawUnchangedMs).median / 1000).toFixed(2)} s)`,
      unit: 'ms',
      better: 'lower',
      value: u,
      baseline: { ...fl, label: 'bare docker stop + docker start (wall)' },
    });
    g.target = { text: '≤ stop+start + 1.5 s', met: u.median <= fl.median + 1500 };
    out.push(g);
  }
  const sec9 = '9. `kopia` processes per run that open the repository (and the seconds they take)';
  for (const r of sizes) {
    const perVolume = measure(
      'kopia by hand: one per volume',
      r.warm.map(() => 2),
    );
    out.push(
      figure({
        id: `warm.kopia.first.${String(r.bytes)}`,
        section: sec9,
        what: `${r.label}: first backup with the warm pass (${(
          measure(
            '',
            r.warm.map((x) => x.kopiaMs),
          ).median / 1000
        ).toFixed(1)} s in kopia)`,
        unit: 'count',
        better: 'lower',
        value: measure(
          'kopia processes',
          r.warm.map((x) => x.kopiaProcesses),
        ),
        baseline: perVolume,
      }),
    );
    out.push(
      figure({
        id: `warm.kopia.first-never.${String(r.bytes)}`,
        section: sec9,
        what: `${r.label}: first backup without the warm pass (${(
          measure(
            '',
            r.never.map((x) => x.kopiaMs),
          ).median / 1000
        ).toFixed(1)} s in kopia)`,
        unit: 'count',
        better: 'lower',
        value: measure(
          'kopia processes',
          r.never.map((x) => x.kopiaProcesses),
        ),
        baseline: perVolume,
      }),
    );
    out.push(
      figure({
        id: `warm.kopia.unchanged.${String(r.bytes)}`,
        section: sec9,
        what: `${r.label}: unchanged second backup (${(
          measure(
            '',
            r.warmUnchanged.map((x) => x.kopiaMs),
          ).median / 1000
        ).toFixed(1)} s in kopia)`,
        unit: 'count',
        better: 'lower',
        value: measure(
          'kopia processes',
          r.warmUnchanged.map((x) => x.kopiaProcesses),
        ),
        baseline: perVolume,
      }),
    );
  }
  return out;
}
