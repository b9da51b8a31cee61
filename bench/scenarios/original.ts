/**
 * Figure 10 (#14): kopi-docka side by side with the original kopi-docka (Python, the version pinned in
 * scripts/versions.env, from PyPI) on the same Compose unit as figure 1 (2 services, one volume each,
 * the unit-size dataset), each with a filesystem repository of its own on the same disk, both with
 * their defaults otherwise (kopi-docka: direct mode, `warm_pass = auto`; the original: direct mode,
 * scope `standard`, i.e. recipe + networks + volumes).
 *
 * Per repetition, into fresh repositories: a first backup by each (which goes first alternates), then
 * an unchanged second backup by each, next to the bare stop+start floor of each phase. Measured: the
 * whole command's wall time (`repo init` / `init` excluded) and the downtime from Docker's events.
 */
import type { BenchContext, ScenarioResult } from '../lib/context.js';
import { createKd, kd, parseJsonOut, type KdInstance } from '../lib/kd.js';
import {
  createOriginal,
  ensureOriginal,
  originalBackup,
  originalVersion,
  originalLeftovers,
  type OriginalInstance,
} from '../lib/original.js';
import { flushDisk } from '../lib/proc.js';
import { figure, measure, type Figure } from '../lib/report.js';
import { createUnitStack, floor, kdOpts, observe, type DowntimeSample, type UnitStack } from './unit.js';

type Tool = 'kopi-docka' | 'original';
type Phase = 'first' | 'second';

interface Samples {
  floor: DowntimeSample[];
  'kopi-docka': DowntimeSample[];
  original: DowntimeSample[];
}

async function kdRun(ctx: BenchContext, inst: KdInstance, s: UnitStack): Promise<DowntimeSample> {
  await flushDisk();
  const since = Date.now();
  const r = await kd(ctx.cli, inst, ['backup', '--unit', s.project, '--json']);
  const rec = parseJsonOut<{ units: { unit: string; status: string; downtimeSec: number }[] }>(r);
  const u = rec.units.find((x) => x.unit === s.project);
  if (!u || u.status !== 'ok') throw new Error(`backup of ${s.project} not ok: ${JSON.stringify(u)}`);
  return { wallMs: r.ms, ...(await observe(s, since)), reportedSec: u.downtimeSec };
}

async function originalRun(bin: string, inst: OriginalInstance, s: UnitStack): Promise<DowntimeSample> {
  await flushDisk();
  const since = Date.now();
  const r = await originalBackup(bin, inst, s.project);
  return { wallMs: r.ms, ...(await observe(s, since)) };
}

export async function originalScenario(ctx: BenchContext): Promise<ScenarioResult> {
  const bin = await ensureOriginal(ctx.log);
  const version = originalVersion();
  const s = await createUnitStack(ctx);
  ctx.cleanup.add(
    `what the original kopi-docka leaves on the host for ${s.project}`,
    originalLeftovers(s.project),
  );
  const phases: Record<Phase, Samples> = {
    first: { floor: [], 'kopi-docka': [], original: [] },
    second: { floor: [], 'kopi-docka': [], original: [] },
  };
  for (let rep = 0; rep < ctx.sizes.reps; rep++) {
    ctx.log(`original ${version}: repetition ${String(rep + 1)}/${String(ctx.sizes.reps)}`);
    const [mine, theirs] = await Promise.all([
      createKd({ ...kdOpts(ctx), label: 'side' }),
      createOriginal({
        bin,
        tmpRoot: ctx.tmpRoot,
        cleanup: ctx.cleanup,
        label: 'side',
        stopTimeout: ctx.stopTimeout,
      }),
    ]);
    const order: Tool[] = rep % 2 === 0 ? ['original', 'kopi-docka'] : ['kopi-docka', 'original'];
    for (const phase of ['first', 'second'] as const) {
      const p = phases[phase];
      p.floor.push(await floor(ctx, s));
      for (const tool of order) {
        const x = tool === 'kopi-docka' ? await kdRun(ctx, mine, s) : await originalRun(bin, theirs, s);
        p[tool].push(x);
        ctx.log(
          `  ${phase} backup, ${tool}: command ${(x.wallMs / 1000).toFixed(2)} s, down ${(x.downtimeMs / 1000).toFixed(2)} s (floor ${((p.floor.at(-1)?.downtimeMs ?? 0) / 1000).toFixed(2)} s)`,
        );
      }
    }
    await mine.remove();
    await theirs.remove();
  }
  return { figures: originalFigures(version, phases), details: { version, project: s.project, phases } };
}

function originalFigures(version: string, phases: Record<Phase, Samples>): Figure[] {
  const out: Figure[] = [];
  const section = `10. Side by side with the original kopi-docka ${version} (Python, PyPI), same unit and repository kind`;
  const name = { first: 'first backup', second: 'second backup, nothing changed' } as const;
  for (const phase of ['first', 'second'] as const) {
    const p = phases[phase];
    const fl = measure(
      '',
      p.floor.map((x) => x.downtimeMs),
    ).median;
    /** One row: kopi-docka's samples of `field` against the original's, same phase. */
    const row = (field: 'wallMs' | 'downtimeMs', id: string, what: string): Figure =>
      figure({
        id: `original.${phase}.${id}`,
        section,
        what: `${name[phase]}: ${what}`,
        unit: 'ms',
        better: 'lower',
        value: measure(
          'kopi-docka backup',
          p['kopi-docka'].map((x) => x[field]),
        ),
        baseline: measure(
          `original kopi-docka ${version} backup`,
          p.original.map((x) => x[field]),
        ),
      });
    const wall = row('wallMs', 'wall', 'whole command');
    wall.target = { text: '≤ 0.5× the original', met: wall.ratio <= 0.5 };
    const down = row('downtimeMs', 'downtime', `downtime (floor ${(fl / 1000).toFixed(2)} s)`);
    down.target = { text: 'less than the original', met: down.ratio < 1 };
    out.push(wall, down);
  }
  return out;
}
