/**
 * kopi-docka benchmarks — one command: `npm run bench` (full size) or `npm run bench:smoke`.
 *
 *   node --import tsx bench/run.ts [--smoke] [--reps N] [--only unit,scale,memory,warm,original]
 *                                  [--results-dir DIR] [--cli dist/main.js] [--tmp DIR]
 *
 * Measures every figure next to its baseline in the same run on the same data (see docs/BENCHMARKS.md),
 * prints a Markdown table on stdout (progress goes to stderr) and writes everything — medians, every
 * sample, the machine — as JSON to bench/results/<time>-<size>.json. Everything it creates (Compose
 * projects, containers, volumes, repositories, state dirs) has a unique `kdb-` name and is removed at
 * the end, also on failure and on Ctrl-C. Exit code: 0 when every figure was measured (whether or not
 * the targets are met), 1 when a scenario failed, 2 on bad usage, 130/143 when interrupted.
 *
 * Docker is the daemon DOCKER_HOST names (else the default socket); Compose is `docker compose` (v2) or
 * `docker-compose` (v1) as KD_TEST_COMPOSE says, else v2 when it runs (bench/lib/compose.ts).
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Cleanup } from './lib/cleanup.js';
import { detectCompose } from './lib/compose.js';
import { FULL, SMOKE, type BenchContext, type ScenarioResult, type Sizes } from './lib/context.js';
import { docker } from './lib/docker.js';
import { createKd, resolvedBackupConfig } from './lib/kd.js';
import { KOPIA_BIN } from './lib/kopia.js';
import { describeMachine, machineMarkdown, type Machine } from './lib/machine.js';
import { exec, killAllChildren } from './lib/proc.js';
import { markdownTable, type Figure } from './lib/report.js';
import { memoryScenario } from './scenarios/memory.js';
import { originalScenario } from './scenarios/original.js';
import { scaleScenario } from './scenarios/scale.js';
import { unitScenario } from './scenarios/unit.js';
import { warmScenario } from './scenarios/warm.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SCENARIOS = ['unit', 'scale', 'memory', 'warm', 'original'] as const;
type ScenarioName = (typeof SCENARIOS)[number];

export interface BenchResults {
  format: 1;
  size: Sizes['name'];
  reps: number;
  startedAt: string;
  finishedAt: string;
  machine: Machine;
  settings: {
    stopTimeout: number;
    parallelWorkers: number;
    defaultVolumeMode: string;
    image: string;
    cli: string;
  };
  figures: Figure[];
  targets: { id: string; what: string; target: string; met: boolean }[];
  details: Partial<Record<ScenarioName, Record<string, unknown>>>;
  errors: { scenario: string; message: string }[];
}

function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

function usage(msg: string): never {
  process.stderr.write(
    `${msg}\nusage: bench/run.ts [--smoke] [--reps N] [--only ${SCENARIOS.join(',')}] [--results-dir DIR] [--cli PATH] [--tmp DIR]\n`,
  );
  process.exit(2);
}

async function preflight(cli: string, image: string): Promise<void> {
  if (!existsSync(cli))
    throw new Error(`${cli} does not exist: build first (npx tsc -p tsconfig.build.json)`);
  if (process.getuid?.() !== 0) log('warning: not root — writing datasets into volume mountpoints will fail');
  await docker(['version', '--format', '{{.Server.Version}}']).catch(() => {
    throw new Error('Docker does not answer: run `bash scripts/provision.sh`');
  });
  await docker(['image', 'inspect', image]).catch(() => {
    throw new Error(`image ${image} is missing: run \`bash scripts/provision.sh\``);
  });
  await exec([KOPIA_BIN, '--version']).catch(() => {
    throw new Error(`kopia (${KOPIA_BIN}) not found: run \`bash scripts/provision.sh\``);
  });
  const c = await detectCompose();
  log(`Compose ${c.flavour} ${c.version} (${c.command.join(' ')})`);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      smoke: { type: 'boolean', default: false },
      reps: { type: 'string' },
      only: { type: 'string' },
      'results-dir': { type: 'string' },
      cli: { type: 'string' },
      tmp: { type: 'string' },
    },
    strict: true,
  });
  const base = values.smoke ? SMOKE : FULL;
  const reps = values.reps === undefined ? base.reps : Number(values.reps);
  if (!Number.isInteger(reps) || reps < 1)
    usage(`--reps must be a positive integer, not ${String(values.reps)}`);
  const sizes: Sizes = { ...base, reps };
  const only = (values.only
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean) ?? [...SCENARIOS]) as ScenarioName[];
  for (const o of only) if (!SCENARIOS.includes(o)) usage(`unknown scenario "${o}"`);
  const cli = path.resolve(values.cli ?? path.join(REPO_ROOT, 'dist', 'main.js'));
  const resultsDir = path.resolve(values['results-dir'] ?? path.join(REPO_ROOT, 'bench', 'results'));
  const image = process.env.KD_TEST_IMAGE || 'kd-test-busybox:latest';

  const cleanup = new Cleanup(log);
  let interrupted: NodeJS.Signals | undefined;
  // On a signal: kill the running children (kopi-docka restarts what it stopped) and start nothing
  // new; the scenario then fails fast and `finally` below removes everything. Should that hang, a
  // second signal or 60 s later the removal runs from here.
  const onSignal = (sig: NodeJS.Signals) => {
    const code = sig === 'SIGINT' ? 130 : 143;
    const now = () => void cleanup.runAll().finally(() => process.exit(code));
    if (interrupted) {
      log(`${sig} again: removing what this run created now`);
      now();
      return;
    }
    interrupted = sig;
    log(`${sig}: stopping, then removing everything this run created…`);
    killAllChildren('SIGTERM');
    setTimeout(now, 60_000).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const startedAt = new Date().toISOString();
  const figures: Figure[] = [];
  const details: BenchResults['details'] = {};
  const errors: BenchResults['errors'] = [];
  let results: BenchResults | undefined;
  try {
    await preflight(cli, image);
    const tmpRoot = await mkdtemp(path.join(values.tmp ?? os.tmpdir(), 'kdb-bench-'));
    cleanup.add(`temp dir ${tmpRoot}`, () => rm(tmpRoot, { recursive: true, force: true }));
    const machine = await describeMachine(tmpRoot);
    log(`${sizes.name} run, ${String(reps)} repetition(s), scenarios ${only.join(', ')}; temp ${tmpRoot}`);

    // What kopi-docka resolves on this machine: parallel_workers (auto) and the default volume mode.
    const probe = await createKd({ cli, tmpRoot, cleanup, label: 'probe', stopTimeout: 10, init: false });
    const resolved = await resolvedBackupConfig(cli, probe);
    await probe.remove();
    if (resolved.volumeModeOrigin !== 'default')
      throw new Error('probe config unexpectedly sets volume_mode');
    const ctx: BenchContext = {
      cli,
      tmpRoot,
      cleanup,
      log,
      sizes,
      image,
      stopTimeout: 10,
      parallelWorkers: resolved.parallelWorkers,
    };
    log(
      `kopi-docka: parallel_workers = ${String(resolved.parallelWorkers)}, default volume_mode = ${resolved.volumeMode}`,
    );

    for (const name of only) {
      if (interrupted) break;
      log(`scenario ${name}…`);
      try {
        let r: ScenarioResult;
        if (name === 'unit') r = await unitScenario(ctx, resolved.volumeMode);
        else if (name === 'scale') r = await scaleScenario(ctx);
        else if (name === 'warm') r = await warmScenario(ctx);
        else if (name === 'original') r = await originalScenario(ctx);
        else r = await memoryScenario(ctx);
        figures.push(...r.figures);
        details[name] = r.details;
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        errors.push({ scenario: name, message });
        log(`scenario ${name} FAILED: ${message}`);
      }
    }
    results = {
      format: 1,
      size: sizes.name,
      reps,
      startedAt,
      finishedAt: new Date().toISOString(),
      machine,
      settings: {
        stopTimeout: ctx.stopTimeout,
        parallelWorkers: ctx.parallelWorkers,
        defaultVolumeMode: resolved.volumeMode,
        image,
        cli,
      },
      figures,
      targets: figures
        .filter((f) => f.target)
        .map((f) => ({ id: f.id, what: f.what, target: f.target?.text ?? '', met: f.target?.met ?? false })),
      details,
      errors,
    };
  } catch (err) {
    errors.push({ scenario: 'setup', message: err instanceof Error ? err.message : String(err) });
    log(`FAILED: ${errors.at(-1)?.message ?? ''}`);
  } finally {
    log(`removing what this run created (${String(cleanup.pending)} item(s))…`);
    await cleanup.runAll();
  }
  if (interrupted) return interrupted === 'SIGINT' ? 130 : 143;
  if (!results) return 1;

  await mkdir(resultsDir, { recursive: true });
  const file = path.join(resultsDir, `${startedAt.replace(/[:.]/g, '-')}-${sizes.name}.json`);
  await writeFile(file, `${JSON.stringify(results, null, 2)}\n`);

  const met = results.targets.filter((t) => t.met).length;
  process.stdout.write(
    [
      `## kopi-docka benchmark — ${sizes.name} size, median of ${String(reps)} repetition(s)`,
      '',
      `Run ${startedAt}. parallel_workers = ${String(results.settings.parallelWorkers)}, default volume_mode = ${results.settings.defaultVolumeMode}.`,
      '',
      machineMarkdown(results.machine),
      '',
      markdownTable(figures),
      '',
      `Targets met: ${String(met)} of ${String(results.targets.length)}.`,
      ...results.errors.map((e) => `\n**scenario ${e.scenario} failed:** ${e.message}`),
      '',
      `JSON: ${file}`,
      '',
    ].join('\n'),
  );
  return results.errors.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
