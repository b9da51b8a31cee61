/**
 * Figure 4: discovery and planning at scale. N Compose-labelled units of K created (never started)
 * containers, each with its own named volume, made with `docker create` — what discovery and the
 * planner read is the same as for running stacks. Timed: `kopi-docka list --units` (baseline: the same
 * command on this host before the units exist) and `kopi-docka backup --dry-run` of all N units
 * (baseline: the same dry-run of one of them).
 */
import { performance } from 'node:perf_hooks';
import type { BenchContext, ScenarioResult } from '../lib/context.js';
import { docker } from '../lib/docker.js';
import { createKd, kd, parseJsonOut, type KdInstance } from '../lib/kd.js';
import { mapLimit } from '../lib/proc.js';
import { figure, measure, type Figure } from '../lib/report.js';
import { uniqueName } from '../lib/cleanup.js';

const BENCH_LABEL = 'org.kopi-docka.bench';

async function timeCli(ctx: BenchContext, inst: KdInstance, args: string[]): Promise<number> {
  const r = await kd(ctx.cli, inst, args);
  return r.ms;
}

export async function scaleScenario(ctx: BenchContext): Promise<ScenarioResult> {
  const { units, containersPerUnit } = ctx.sizes.scale;
  const reps = ctx.sizes.reps;
  const inst = await createKd({
    cli: ctx.cli,
    tmpRoot: ctx.tmpRoot,
    cleanup: ctx.cleanup,
    label: 'scale',
    stopTimeout: ctx.stopTimeout,
    // Initialised: since #11 the dry-run runs the run's pre-flight and exits as the run would (5 for a
    // repository that is not there), and since #14 it reads the snapshot history for the warm pass.
    init: true,
  });
  const listArgs = ['list', '--units'];

  // Warm-up (first node start reads the code from disk), then the baseline before the units exist.
  await timeCli(ctx, inst, listArgs);
  const listBefore: number[] = [];
  for (let i = 0; i < reps; i++) listBefore.push(await timeCli(ctx, inst, listArgs));
  const unitsBefore = parseJsonOut<{ units: unknown[] }>(await kd(ctx.cli, inst, [...listArgs, '--json']))
    .units.length;

  const run = uniqueName('scale');
  const projects = Array.from({ length: units }, (_, i) => `${run}-u${String(i).padStart(3, '0')}`);
  const volumes = projects.flatMap((p) =>
    Array.from({ length: containersPerUnit }, (_, j) => `${p}-v${String(j)}`),
  );
  ctx.cleanup.add(`scale units ${run}`, async () => {
    const ids = (
      await docker(['ps', '-aq', '--filter', `label=${BENCH_LABEL}=${run}`], {
        allowFail: true,
        cleanup: true,
      })
    ).stdout
      .split('\n')
      .filter(Boolean);
    for (let i = 0; i < ids.length; i += 100)
      await docker(['rm', '-f', '-v', ...ids.slice(i, i + 100)], { allowFail: true, cleanup: true });
    for (let i = 0; i < volumes.length; i += 100) {
      await docker(['volume', 'rm', '-f', ...volumes.slice(i, i + 100)], { allowFail: true, cleanup: true });
    }
  });
  const t0 = performance.now();
  const jobs = projects.flatMap((p) => Array.from({ length: containersPerUnit }, (_, j) => ({ p, j })));
  await mapLimit(jobs, 8, ({ p, j }) =>
    docker([
      'create',
      '--name',
      `${p}-s${String(j)}`,
      '--label',
      `${BENCH_LABEL}=${run}`,
      '--label',
      `com.docker.compose.project=${p}`,
      '--label',
      `com.docker.compose.service=s${String(j)}`,
      '--label',
      'com.docker.compose.container-number=1',
      '--label',
      'com.docker.compose.oneoff=False',
      '-v',
      `${p}-v${String(j)}:/v`,
      ctx.image,
      'sh',
      '-c',
      'while :; do sleep 1; done',
    ]),
  );
  ctx.log(
    `scale: created ${String(units)} units, ${String(jobs.length)} containers, ${String(volumes.length)} volumes in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );

  // Every unit is discovered with its containers (checked once, not timed).
  const listed = parseJsonOut<{ units: { name: string; containers: unknown[] }[] }>(
    await kd(ctx.cli, inst, [...listArgs, '--json']),
  ).units;
  const mine = listed.filter((u) => u.name.startsWith(`${run}-`));
  if (mine.length !== units || mine.some((u) => u.containers.length !== containersPerUnit)) {
    throw new Error(`list --units found ${String(mine.length)} of the ${String(units)} bench units`);
  }

  const listAfter: number[] = [];
  for (let i = 0; i < reps; i++) listAfter.push(await timeCli(ctx, inst, listArgs));
  const dryAll = ['backup', '--dry-run', ...projects.flatMap((p) => ['--unit', p])];
  const dryOne = ['backup', '--dry-run', '--unit', projects[0] ?? ''];
  const dryAllMs: number[] = [];
  const dryOneMs: number[] = [];
  for (let i = 0; i < reps; i++) {
    dryOneMs.push(await timeCli(ctx, inst, dryOne));
    dryAllMs.push(await timeCli(ctx, inst, dryAll));
  }

  const section = `4. Discovery and planning at scale (${String(units)} units / ${String(jobs.length)} containers / ${String(volumes.length)} volumes)`;
  const list = figure({
    id: 'scale.list-units',
    section,
    what: `\`kopi-docka list --units\` with ${String(units)} more units`,
    unit: 'ms',
    better: 'lower',
    value: measure(`list --units, ${String(unitsBefore + units)} units on the host`, listAfter),
    baseline: measure(
      `same command before they existed (${String(unitsBefore)} units on the host)`,
      listBefore,
    ),
  });
  list.target = {
    text: units >= 100 ? '< 1 s' : '< 1 s (target is for 100 units)',
    met: list.value.median < 1000,
  };
  const figures: Figure[] = [
    list,
    figure({
      id: 'scale.dry-run',
      section,
      what: `\`kopi-docka backup --dry-run\` of ${String(units)} units`,
      unit: 'ms',
      better: 'lower',
      value: measure(`backup --dry-run, ${String(units)} units`, dryAllMs),
      baseline: measure('same dry-run of 1 of them', dryOneMs),
    }),
  ];
  return {
    figures,
    details: {
      units,
      containers: jobs.length,
      volumes: volumes.length,
      otherUnitsOnHost: unitsBefore,
      listBeforeMs: listBefore,
      listAfterMs: listAfter,
      dryRunAllMs: dryAllMs,
      dryRunOneMs: dryOneMs,
    },
  };
}
