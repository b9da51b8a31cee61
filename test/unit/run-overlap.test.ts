/**
 * What a run does side by side to open the repository fewer times one after another (issue #14 §2),
 * with a fake kopia (the adapter's runner) and a fake Docker:
 *   - startRun: the pre-flight beside the run-wide reads, nothing written before its verdict, which
 *     wins over any failed read;
 *   - backupUnit: the recipe snapshot beside the restart, the containers started whatever it does.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { KopiaSettings } from '../../src/config/types.js';
import type { RunOptions, RunResult } from '../../src/adapters/process.js';
import { Kopia } from '../../src/adapters/kopia.js';
import type { Logger } from '../../src/core/log.js';
import type { ContainerInfo, MountInfo, Unit } from '../../src/core/model.js';
import { containerInfo, planOptions } from './fixtures.js';
import { buildPlan, type Plan, type PlanOptions } from '../../src/core/plan.js';
import { KopiDockaError } from '../../src/errors.js';
import { backupUnit, type BackupDeps, type RunShared } from '../../src/pipeline/backup.js';
import type { CheckItem } from '../../src/pipeline/preflight.js';
import { startRun } from '../../src/pipeline/run.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One kopia process the fake ran: `snapshot list`, `policy set`…, when it started and ended. */
interface Proc {
  command: string;
  argv: readonly string[];
  start: number;
  end: number;
}

type Answer = Partial<RunResult> | ((argv: readonly string[]) => Partial<RunResult>);

/** A Kopia whose every process takes `ms` (an abort ends it at once) and answers by subcommand. */
function fakeKopia(answers: Record<string, Answer>, ms = 60) {
  const procs: Proc[] = [];
  const t0 = performance.now();
  const settings: KopiaSettings = {
    repositoryPath: '/backup/repo',
    password: 'pw-for-tests',
    passwordFile: undefined,
    compression: 'zstd',
    encryption: 'AES256-GCM-HMAC-SHA256',
    cacheDirectory: '/var/cache/kopi-docka',
    kopiaConfigFile: '/etc/kopi-docka/kopia.config',
    hostname: 'h',
    username: 'u',
    binary: 'kopia',
  };
  const kopia = new Kopia(settings, {
    runner: async (argv, opts: RunOptions) => {
      const command = argv
        .slice(1)
        .filter((a) => !a.startsWith('-'))
        .slice(0, 2)
        .join(' ');
      const p: Proc = { command, argv, start: performance.now() - t0, end: Infinity };
      procs.push(p);
      const aborted = await new Promise<boolean>((resolve) => {
        if (opts.signal?.aborted) return resolve(true);
        const timer = setTimeout(() => resolve(false), ms);
        opts.signal?.addEventListener('abort', () => (clearTimeout(timer), resolve(true)), { once: true });
      });
      p.end = performance.now() - t0;
      const base: RunResult = { code: 0, signal: null, stdout: '', stderrTail: '', timedOut: false, aborted };
      if (aborted) return { ...base, code: null, signal: 'SIGTERM' };
      const a = answers[command] ?? {};
      return { ...base, ...(typeof a === 'function' ? a(argv) : a) };
    },
  });
  const named = (command: string) => procs.filter((p) => p.command === command);
  return { kopia, procs, named, t0 };
}

function recordingLog() {
  const lines: string[] = [];
  const log: Logger = {
    level: 'debug',
    debug: () => {},
    info: (m) => lines.push(`info ${m}`),
    warn: (m) => lines.push(`warn ${m}`),
    error: (m) => lines.push(`error ${m}`),
  };
  return { log, lines };
}

function mount(p: Partial<MountInfo> & Pick<MountInfo, 'kind' | 'source' | 'destination'>): MountInfo {
  return { name: undefined, readOnly: false, driver: undefined, ...p };
}

const container = (name: string, mounts: MountInfo[]): ContainerInfo => containerInfo(name, { mounts });

function planOf(unit: Unit): Plan {
  const opts: PlanOptions = planOptions({
    backupId: '2026-01-01T00-00-00Z',
    run: {
      stallTimeoutSec: 0,
      startTimeoutSec: 10,
      retention: { keepLatest: 3, keepHourly: 0, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepAnnual: 0 },
    },
  });

  return buildPlan([unit], opts);
}

function unitWithBind(name: string, hostPath: string): Unit {
  return {
    name,
    kind: 'standalone',
    containers: [container(name, [mount({ kind: 'bind', source: hostPath, destination: '/data' })])],
    composeWorkingDir: undefined,
    composeConfigFiles: [],
    missingConfigFiles: [],
  };
}

/** A snapshot manifest as `kopia snapshot create/list --json` prints it. */
function manifest(id: string, path: string, tags: Record<string, string> = {}) {
  return {
    id,
    source: { host: 'h', userName: 'u', path },
    description: '',
    startTime: '2026-01-01T00:00:00Z',
    endTime: '2026-01-01T00:00:01Z',
    rootEntry: {
      name: 'x',
      type: 'd',
      mode: '0755',
      mtime: '2026-01-01T00:00:00Z',
      obj: 'k01d7a08e6740be0b7a02cd4ab1104fc8',
      summ: { size: 5, files: 1, symlinks: 0, dirs: 1, numFailed: 0 },
    },
    tags: Object.fromEntries(Object.entries(tags).map(([k, v]) => [`tag:${k}`, v])),
  };
}

/** `policy list` after the writes: every target `policy set` was given, with the plan's policy. */
function policyListAfterSet(procs: Proc[]): Partial<RunResult> {
  const targets = procs
    .filter((p) => p.command === 'policy set')
    .flatMap((p) => p.argv.slice(p.argv.indexOf('--') + 1));
  return {
    stdout: JSON.stringify(
      targets.map((t, i) => ({
        id: String(i),
        target: { userName: 'u', host: 'h', path: t.slice(t.indexOf(':') + 1) },
        retention: {
          keepLatest: 3,
          keepHourly: 0,
          keepDaily: 0,
          keepWeekly: 0,
          keepMonthly: 0,
          keepAnnual: 0,
        },
        compression: { compressorName: 'zstd' },
      })),
    ),
  };
}

const failing = (name: string, kind: CheckItem['kind'], detail: string): CheckItem => ({
  name,
  kind,
  ok: false,
  detail,
  hint: `fix ${name}`,
});

describe('startRun: the pre-flight beside the run-wide reads', () => {
  const plan = () => planOf(unitWithBind('app', '/nonexistent/kd-test/app-data'));
  // A warm snapshot a crashed run left behind: removing it is a write.
  const stale = manifest('5a1e0000000000000000000000000001', '/binds/app/x', { pass: 'warm', unit: 'app' });
  const listing = { stdout: JSON.stringify([stale]) };

  it('starts the reads while `repository status` runs, and writes only after the verdict', async () => {
    const g = fakeKopia({
      'snapshot list': listing,
      'policy list': () =>
        g.named('policy set').length > 0 ? policyListAfterSet(g.procs) : { stdout: '[]' },
      'maintenance info': { stdout: JSON.stringify({ owner: 'u@h', schedule: {} }) },
      'repository status': { code: 1, stderrTail: 'repository is not connected' },
    });
    const { log, lines } = recordingLog();
    let verdictAt = 0;
    const got = await startRun({ kopia: g.kopia, log }, plan(), new AbortController().signal, async () => {
      await g.kopia.status();
      verdictAt = performance.now() - g.t0;
      return [];
    });
    const status = g.named('repository status')[0];
    assert.ok(status);
    for (const c of ['snapshot list', 'policy list', 'maintenance info']) {
      const read = g.named(c)[0];
      assert.ok(read, c);
      assert.ok(read.start < status.end && status.start < read.end, `${c} overlaps repository status`);
    }
    // The writes: policies (set + verifying list) and the stale warm snapshot, after the verdict.
    const sets = g.named('policy set');
    const deletes = g.named('snapshot delete');
    assert.equal(sets.length, 1);
    assert.equal(deletes.length, 1);
    for (const w of [...sets, ...deletes]) assert.ok(w.start >= verdictAt, `${w.command} after the verdict`);
    assert.equal(got.policiesEnsured, true);
    assert.equal(got.listed?.[0]?.id, '5a1e0000000000000000000000000001');
    assert.equal(got.info?.owner, 'u@h');
    assert.ok(lines.some((l) => /removed 1 warm-pass snapshot/.test(l)));
  });

  it('a failed pre-flight: its verdict, nothing written, none of the reads’ failures logged', async () => {
    for (const reads of ['answer', 'fail'] as const) {
      const bad: Partial<RunResult> = { code: 1, stderrTail: 'boom: cannot open repository' };
      const g = fakeKopia({
        'snapshot list': reads === 'answer' ? listing : bad,
        'policy list': reads === 'answer' ? { stdout: '[]' } : bad,
        'maintenance info': bad,
      });
      const { log, lines } = recordingLog();
      await assert.rejects(
        startRun({ kopia: g.kopia, log }, plan(), new AbortController().signal, async () => {
          await g.kopia.status().catch(() => undefined);
          return [
            { name: 'kopia', kind: 'dependency', ok: true, detail: 'kopia 0.23.1' },
            failing('writable', 'repository', 'cannot write to /backup/repo: EROFS'),
          ];
        }),
        (e: unknown) =>
          e instanceof KopiDockaError &&
          e.exitCode === 5 &&
          e.message === 'pre-flight writable: cannot write to /backup/repo: EROFS' &&
          e.hint === 'fix writable',
        reads,
      );
      assert.ok(g.named('snapshot list').length === 1 && g.named('policy list').length === 1, reads);
      assert.deepEqual(g.named('policy set'), [], `${reads}: no policy written`);
      assert.deepEqual(g.named('snapshot delete'), [], `${reads}: no snapshot deleted`);
      assert.deepEqual(lines, [], `${reads}: only the verdict is reported`);
    }
  });

  it('a pre-flight that throws is rethrown as is (after every read has settled)', async () => {
    const g = fakeKopia({ 'snapshot list': listing, 'policy list': { stdout: '[]' } });
    const boom = new KopiDockaError('kopia not found', { exitCode: 4 });
    await assert.rejects(
      startRun({ kopia: g.kopia, log: recordingLog().log }, plan(), new AbortController().signal, () =>
        Promise.reject(boom),
      ),
      (e) => e === boom,
    );
    assert.ok(
      g.procs.every((p) => p.end !== Infinity),
      'no read left running',
    );
    assert.deepEqual(g.named('policy set'), []);
  });
});

describe('backupUnit: the recipe snapshot beside the restart', () => {
  // As in a run: history listed and policies set once beforehand (no kopia calls of their own).
  const shared = (): RunShared => ({ history: new Map(), policiesEnsured: true, warmIds: [] });
  let tmp = '';
  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'kd-overlap-'));
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  /** A unit with one bind source (a real directory) and a Docker whose start takes `startMs`. */
  async function setup(label: string, opts: { startMs: number; startedElsewhere?: boolean }) {
    const dir = path.join(tmp, label);
    const data = path.join(dir, 'data');
    await mkdir(data, { recursive: true });
    await writeFile(path.join(data, 'f'), 'hello');
    const unit = unitWithBind(label, data);
    const plan = planOf(unit);
    const up = plan.units[0];
    assert.ok(up && up.stop.length === 1 && up.sources.length === 1);
    const events: { what: string; at: number }[] = [];
    let running = true;
    const docker: BackupDeps['docker'] = {
      stopContainer: () => ((running = false), Promise.resolve(true)),
      startContainer: async () => {
        events.push({ what: 'start begins', at: performance.now() });
        await sleep(opts.startMs);
        running = true;
        events.push({ what: 'start ends', at: performance.now() });
        return true;
      },
      waitRunning: () => Promise.resolve(),
      waitHealthy: () => Promise.resolve(),
      inspectContainer: () =>
        Promise.resolve({
          State:
            running || opts.startedElsewhere
              ? { Status: 'running', Running: true, ExitCode: 0 }
              : { Status: 'exited', Running: false, ExitCode: 0 },
        }),
      imageDigests: () => Promise.resolve([]),
    };
    return { dir, unit, plan, up, docker, events };
  }

  /** backupUnit on the setup's unit with a fake Kopia (the log is not looked at). */
  const runUnit = (
    s: Awaited<ReturnType<typeof setup>>,
    kopia: Kopia,
    signal = new AbortController().signal,
  ) =>
    backupUnit({
      deps: { stateDir: s.dir, docker: s.docker, kopia, log: recordingLog().log, shared: shared() },
      plan: s.plan,
      unit: s.unit,
      up: s.up,
      signal,
      timestamp: '2026-01-01T00:00:00.000Z',
    });

  /** `kopia snapshot create --json`: manifest r1 for the recipe source, d1 for a data source. */
  const snapshotCreated = (argv: readonly string[]) => {
    const src = argv.find((a) => a.startsWith('--override-source='))?.split(':')[1] ?? '';
    return { stdout: JSON.stringify(manifest(src.startsWith('/recipes') ? 'r1' : 'd1', src)) };
  };

  it('starts the recipe snapshot before the restart has finished; the manifest is as before', async () => {
    const s = await setup('overlap', { startMs: 300, startedElsewhere: true });
    type Staged = { warnings: string[]; snapshots: unknown[]; stops: unknown[] };
    let manifestAtRecipe: Staged | undefined;
    let recipeStart = 0;
    const f = fakeKopia(
      {
        'snapshot create': snapshotCreated,
      },
      50,
    );
    const snapshotCreate = f.kopia.snapshotCreate.bind(f.kopia);
    f.kopia.snapshotCreate = async (dir, o) => {
      if (o.source.includes(':/recipes/')) {
        recipeStart = performance.now();
        manifestAtRecipe = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as Staged;
      }
      return snapshotCreate(dir, o);
    };
    const rec = await runUnit(s, f.kopia);
    assert.equal(rec.status, 'ok', rec.error);
    assert.deepEqual(
      rec.snapshots.map((x) => [x.type, x.id]),
      [
        ['bind', 'd1'],
        ['recipe', 'r1'],
      ],
    );
    const startEnds = s.events.find((e) => e.what === 'start ends')?.at ?? 0;
    assert.ok(recipeStart > 0 && recipeStart < startEnds, 'the recipe snapshot starts during the restart');
    // The downtime is the restart's (≥ its 300 ms), not the recipe's.
    assert.ok(rec.downtimeSec >= 0.3, String(rec.downtimeSec));
    // The manifest already names the container something else started (looked at before it is written)
    // and holds the data snapshot and the stop record.
    assert.ok(manifestAtRecipe);
    assert.ok(manifestAtRecipe.warnings.some((w) => /started again by something else/.test(w)));
    assert.equal(manifestAtRecipe.snapshots.length, 1);
    assert.equal(manifestAtRecipe.stops.length, 1);
  });

  it('a failing recipe snapshot fails the unit, and the containers are started all the same', async () => {
    const s = await setup('recipe-fails', { startMs: 150 });
    const f = fakeKopia(
      {
        'snapshot create': (argv) => {
          const src = argv.find((a) => a.startsWith('--override-source='))?.split(':')[1] ?? '';
          return src.startsWith('/recipes')
            ? { code: 1, stderrTail: 'ERROR no space left on device' }
            : { stdout: JSON.stringify(manifest('d1', src)) };
        },
      },
      20,
    );
    const rec = await runUnit(s, f.kopia);
    assert.equal(rec.status, 'failed');
    assert.match(rec.error ?? '', /no space left on device/);
    assert.doesNotMatch(rec.error ?? '', /not back in service/);
    // The recipe failed (20 ms) long before the start finished (150 ms): the start was not cut short.
    assert.deepEqual(
      s.events.map((e) => e.what),
      ['start begins', 'start ends'],
    );
    assert.ok(rec.downtimeSec >= 0.15, String(rec.downtimeSec));
    assert.deepEqual(
      rec.snapshots.map((x) => x.type),
      ['bind'],
    );
  });

  it('a signal while both run aborts the recipe snapshot: interrupted, containers back, no recipe', async () => {
    const s = await setup('signal', { startMs: 200 });
    const ac = new AbortController();
    const f = fakeKopia(
      {
        'snapshot create': snapshotCreated,
      },
      // Long enough that the recipe is still running when the signal comes.
      1000,
    );
    // The data snapshot is done once `start begins`: abort then.
    const startContainer = s.docker.startContainer.bind(s.docker);
    s.docker.startContainer = (id) => {
      setTimeout(() => ac.abort('SIGTERM'), 50);
      return startContainer(id);
    };
    const rec = await runUnit(s, f.kopia, ac.signal);
    const recipe = f.procs.find((p) => p.argv.some((a) => a.includes(':/recipes/')));
    assert.ok(recipe, 'the recipe snapshot was started beside the restart');
    assert.ok(recipe.end - recipe.start < 900, 'and aborted by the signal');
    assert.equal(rec.status, 'failed');
    assert.equal(rec.error, 'interrupted by SIGTERM; its containers were started again');
    assert.deepEqual(
      s.events.map((e) => e.what),
      ['start begins', 'start ends'],
    );
    assert.deepEqual(
      rec.snapshots.map((x) => x.type),
      ['bind'],
    );
  });
});
