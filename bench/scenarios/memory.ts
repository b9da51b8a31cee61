/**
 * Figure 5: peak memory of the kopi-docka node process (not its kopia/tar children) while it backs up
 * one big volume, next to the same backup of a small volume — in both modes (`tar` streams the data
 * through the node process, `direct` does not). Peak = VmHWM from /proc/<pid>/status, polled every
 * 100 ms (VmHWM is the kernel's own high-water mark, so a peak between two polls is not missed).
 */
import type { BenchContext, ScenarioResult } from '../lib/context.js';
import { planFiles, writeFiles } from '../lib/dataset.js';
import { docker, volumeMountpoint } from '../lib/docker.js';
import { createKd, kd, parseJsonOut, type KdInstance, type VolumeMode } from '../lib/kd.js';
import { figure, measure, type Figure } from '../lib/report.js';
import { flushDisk } from '../lib/proc.js';
import { pollPeak, type PeakPoller } from '../lib/rss.js';
import { uniqueName } from '../lib/cleanup.js';

interface Peak {
  /** Peak resident set, bytes (VmHWM). */
  hwm: number;
  /** Number of polls that read the file. */
  polls: number;
  wallMs: number;
}

async function backupWithPeak(ctx: BenchContext, inst: KdInstance, unit: string): Promise<Peak> {
  await flushDisk();
  let poller: PeakPoller | undefined;
  const r = await kd(ctx.cli, inst, ['backup', '--unit', unit, '--json'], {
    onSpawn: (pid) => (poller = pollPeak(pid)),
  }).catch(async (err: unknown) => {
    await poller?.stop();
    throw err;
  });
  const { hwm, polls } = (await poller?.stop()) ?? { hwm: 0, polls: 0 };
  const rec = parseJsonOut<{ units: { unit: string; status: string }[] }>(r);
  if (rec.units.find((u) => u.unit === unit)?.status !== 'ok') throw new Error(`backup of ${unit} failed`);
  if (polls === 0) throw new Error('could not read /proc/<pid>/status of the kopi-docka process');
  return { hwm, polls, wallMs: r.ms };
}

async function makeUnit(
  ctx: BenchContext,
  label: string,
  bytes: number,
  files: number,
  seed: number,
): Promise<string> {
  const name = uniqueName(label);
  ctx.cleanup.add(`container ${name}`, async () => {
    await docker(['rm', '-f', name], { allowFail: true, cleanup: true });
    await docker(['volume', 'rm', '-f', name], { allowFail: true, cleanup: true });
  });
  await docker(['volume', 'create', name]);
  const mp = await volumeMountpoint(name);
  await writeFiles(mp, planFiles({ files, bytes, dirs: Math.max(1, Math.floor(files / 16)), seed }));
  await docker([
    'run',
    '-d',
    '--init',
    '--name',
    name,
    '-v',
    `${name}:/data`,
    ctx.image,
    'sh',
    '-c',
    'while :; do sleep 1; done',
  ]);
  return name;
}

export async function memoryScenario(ctx: BenchContext): Promise<ScenarioResult> {
  const m = ctx.sizes.memory;
  const big = await makeUnit(ctx, 'mem-big', m.bigBytes, m.bigFiles, 7);
  const small = await makeUnit(ctx, 'mem-small', m.smallBytes, m.smallFiles, 8);
  const peaks: Record<VolumeMode, { big: Peak[]; small: Peak[] }> = {
    direct: { big: [], small: [] },
    tar: { big: [], small: [] },
  };
  for (let rep = 0; rep < ctx.sizes.reps; rep++) {
    // Setup (not measured) in parallel: one fresh kopi-docka instance per mode.
    const insts = await Promise.all(
      (['direct', 'tar'] as const).map((mode) =>
        createKd({
          cli: ctx.cli,
          tmpRoot: ctx.tmpRoot,
          cleanup: ctx.cleanup,
          label: `mem-${mode}`,
          mode,
          stopTimeout: ctx.stopTimeout,
        }).then((inst) => ({ mode, inst })),
      ),
    );
    for (const { mode, inst } of insts) {
      const b = await backupWithPeak(ctx, inst, big);
      const s = await backupWithPeak(ctx, inst, small);
      peaks[mode].big.push(b);
      peaks[mode].small.push(s);
      ctx.log(
        `memory ${mode} ${String(rep + 1)}/${String(ctx.sizes.reps)}: peak RSS ${(b.hwm / 1e6).toFixed(1)} MB (big, ${(b.wallMs / 1000).toFixed(1)} s), ${(s.hwm / 1e6).toFixed(1)} MB (small)`,
      );
      await inst.remove();
    }
  }
  const mb = (n: number) =>
    n >= 1e9 ? `${(n / 1024 ** 3).toFixed(0)} GiB` : `${(n / 1024 ** 2).toFixed(0)} MiB`;
  const section = `5. Peak memory (VmHWM) of the kopi-docka node process during a backup`;
  const figures: Figure[] = (['direct', 'tar'] as const).map((mode) => {
    const f = figure({
      id: `memory.${mode}`,
      section,
      what: `${mode}: one ${mb(m.bigBytes)} volume (${String(m.bigFiles)} files)`,
      unit: 'MB',
      better: 'lower',
      value: measure(
        `peak RSS, ${mb(m.bigBytes)} volume`,
        peaks[mode].big.map((p) => p.hwm / 1e6),
      ),
      baseline: measure(
        `same, ${mb(m.smallBytes)} volume`,
        peaks[mode].small.map((p) => p.hwm / 1e6),
      ),
    });
    // Every sample, not just the median: "regardless of volume size".
    const worst = Math.max(...f.value.samples, ...f.baseline.samples);
    f.target = { text: `< 150 MB for both sizes (worst sample ${worst.toFixed(1)} MB)`, met: worst < 150 };
    return f;
  });
  return { figures, details: { bigBytes: m.bigBytes, smallBytes: m.smallBytes, peaks } };
}
