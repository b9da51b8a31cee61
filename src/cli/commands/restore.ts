import { mkdir } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import type { Command } from '@commander-js/extra-typings';
import { detectCompose, type ComposeDetection } from '../../adapters/compose.js';
import { Kopia } from '../../adapters/kopia.js';
import { pipeline } from '../../adapters/process.js';
import type { Config } from '../../config/types.js';
import { findPoint, groupRestorePoints, type RestorePoint } from '../../core/restore-points.js';
import { restoreCaveats } from '../../core/restore-warnings.js';
import { shq } from '../../core/restore-script.js';
import { ExitCode, KopiDockaError, UsageError } from '../../errors.js';
import { acquireLock } from '../../pipeline/lock.js';
import {
  defaultWorkDir,
  executeScript,
  restoreRecipe,
  selectEntries,
  targetHasData,
  writeRestoreScripts,
  type DataRestore,
  type RestoredRecipe,
} from '../../pipeline/restore.js';
import { createContext, exitState, globalsOf, type Context } from '../context.js';
import { formatBytes } from '../format.js';
import { paint, table } from '../output.js';
import { ask, choose, confirm } from '../prompts.js';

interface RestoreOpts {
  list?: boolean;
  unit?: string;
  backupId?: string;
  to?: string;
  volume: string[];
  path?: string;
  execute?: boolean;
  yes?: boolean;
  host?: string;
  allHosts?: boolean;
  allowIncomplete?: boolean;
  json?: boolean;
}

/**
 * Every restore point of the host(s) asked for — all units, so that an unknown `--unit` can be answered
 * with the units that do exist; `--list --unit` narrows the display only.
 */
async function loadPoints(kopia: Kopia, cfg: Config, o: RestoreOpts): Promise<RestorePoint[]> {
  const snaps = await kopia.snapshotList({ all: true });
  const host = o.allHosts ? undefined : (o.host ?? cfg.kopia.hostname);
  return groupRestorePoints(snaps, { host });
}

function printPoints(ctx: Context, points: RestorePoint[]): void {
  if (points.length === 0) {
    ctx.out.line('no restore points found');
    return;
  }
  ctx.out.line(
    table(
      ['UNIT', 'BACKUP_ID', 'TIME (UTC)', 'HOST', 'SIZE', 'DATA', 'COMPLETE'],
      points.map((p) => [
        p.unit,
        p.backupId,
        p.time.replace(/\.\d+Z$/, 'Z'),
        p.host,
        formatBytes(p.sizeBytes),
        String(p.data.length),
        p.complete ? 'yes' : `NO: ${p.problems.join('; ')}`,
      ]),
    ),
  );
}

function knownPoints(points: RestorePoint[], unit: string): string {
  const ids = points
    .filter((p) => p.unit === unit)
    .map((p) => `${p.backupId}${p.complete ? '' : ' (incomplete)'}`);
  return ids.length ? `restore points of ${unit}: ${ids.join(', ')}` : `no restore points for ${unit}`;
}

function pickPoint(points: RestorePoint[], o: RestoreOpts): RestorePoint {
  const unit = o.unit ?? '';
  const units = [...new Set(points.map((p) => p.unit))];
  if (!units.includes(unit)) {
    throw new UsageError(
      `unknown unit "${unit}" in the repository`,
      `units with restore points: ${units.join(', ') || '(none)'}`,
    );
  }
  // With --all-hosts one unit name may exist on several machines: never pick one of them silently.
  const hosts = [...new Set(points.filter((p) => p.unit === unit).map((p) => p.host))];
  if (hosts.length > 1) {
    throw new UsageError(
      `unit ${unit} has restore points from several hosts: ${hosts.join(', ')}`,
      'pick one with --host H',
    );
  }
  const id = o.backupId ?? 'latest';
  const p = findPoint(points, unit, id);
  if (!p) {
    throw new UsageError(
      id === 'latest' ? `${unit} has no complete restore point` : `unknown backup_id "${id}" for ${unit}`,
      knownPoints(points, unit),
    );
  }
  if (!p.complete && !o.allowIncomplete) {
    throw new KopiDockaError(`restore point ${unit} ${p.backupId} is incomplete: ${p.problems.join('; ')}`, {
      exitCode: ExitCode.USAGE,
      hint: 'pick a complete one, or confirm with --allow-incomplete',
    });
  }
  return p;
}

/** The shell command that puts a safety copy back in place of what the restore wrote. */
function putBackCommand(d: DataRestore, copy: string): string {
  const flags = "--numeric-owner --xattrs --xattrs-include='*' --acls";
  const target =
    d.entry.type === 'volume'
      ? `"$(docker volume inspect --format '{{.Mountpoint}}' ${shq(d.entry.name)})"`
      : shq(d.target);
  if (d.entry.isFile) {
    return `rm -f -- ${target} && tar -xpf ${shq(copy)} ${flags} -C ${shq(dirname(d.target))}`;
  }
  return `find ${target} -mindepth 1 -delete && tar -xpf ${shq(copy)} ${flags} -C ${target}`;
}

/**
 * The Compose command to print for this host — the one found (`docker compose`, or a `docker-compose`
 * that is v1 or a standalone v2), else `docker compose`, what is to be installed — and a note when
 * that command is the legacy v1 or missing.
 */
export function composeAdvice(c: ComposeDetection): { command: string; note: string | undefined } {
  if (c.flavour === 'none') {
    return {
      command: 'docker compose',
      note: 'no Compose was found on this host: install the Compose v2 plugin (`docker compose`) first',
    };
  }
  return {
    command: c.argv.join(' '),
    note:
      c.flavour === 'v1'
        ? 'this host has only the legacy docker-compose; with Compose v2 use `docker compose`'
        : undefined,
  };
}

async function printNextSteps(
  ctx: Context,
  r: RestoredRecipe,
  data: DataRestore[],
  executed: boolean,
  safety: Map<DataRestore, string>,
): Promise<void> {
  const { out } = ctx;
  out.line();
  out.line(
    paint(
      out,
      'bold',
      `Recipe of ${r.manifest.unit} (backup ${r.manifest.backupId}) restored to ${r.workDir}`,
    ),
  );
  for (const d of data) {
    out.line(
      `  ${d.entry.type} ${d.entry.name} → ${d.note}${d.entry.type === 'bind' ? ` at ${d.target}` : ''}`,
    );
    out.line(`    script: ${d.scriptPath}${executed ? ' (done)' : ''}`);
    const copy = safety.get(d);
    if (copy) {
      out.line(`    safety copy of the previous contents: ${copy}`);
      out.line(`    to put it back (with its containers stopped): ${putBackCommand(d, copy)}`);
    }
  }
  if (!executed && data.length > 0) {
    out.line(
      'Run each script (it stops the containers using the data, keeps a safety copy, restores, restarts),',
    );
    out.line('or run this command again with --execute.');
  }
  if (r.composeFiles.length > 0) {
    const { command, note } = composeAdvice(await detectCompose());
    const files = r.composeFiles.map((f) => `-f ${shq(relative(r.projectDir, f))}`).join(' ');
    // The project was started with --env-file (v2 records it in a label): without it, `up` would
    // interpolate other values than the ones the stack ran with.
    const envFiles = (r.environmentFiles ?? [])
      .map((f) => `--env-file ${shq(relative(r.projectDir, f))} `)
      .join('');
    out.line();
    out.line('Next step — start the restored stack:');
    out.line(`  cd ${shq(r.projectDir)} && ${command} ${envFiles}-p ${shq(r.manifest.unit)} ${files} up -d`);
    if (note !== undefined) out.line(`  (${note})`);
  } else {
    out.line();
    out.line('This unit has no Compose file: recreate the container from its inspect document:');
    for (const c of r.manifest.containers)
      out.line(`  ${join(r.recipeDir, c.inspectFile)} (image ${c.image})`);
    out.line(
      '  (docker run with the same image, Env, Cmd, Mounts, ports and restart policy as recorded there)',
    );
  }
  for (const c of restoreCaveats(r.manifest)) out.line(paint(out, 'yellow', `warning: ${c}`));
  for (const x of r.redacted) {
    out.line(
      paint(
        out,
        'yellow',
        `warning: ${x.container}: these variables were redacted at backup and must be filled in by hand: ${x.vars.join(', ')}`,
      ),
    );
  }
}

async function restoreSinglePath(
  ctx: Context,
  kopia: Kopia,
  point: RestorePoint,
  o: RestoreOpts,
): Promise<void> {
  if (!o.to) throw new UsageError('--path needs --to DIR (where to put the file)');
  if (o.volume.length !== 1) throw new UsageError('--path needs exactly one --volume');
  const want = o.volume[0] ?? '';
  const snap = point.data.find((d) => d.name === want || d.name.endsWith(`_${want}`));
  if (!snap) {
    throw new UsageError(
      `unknown volume or bind mount "${want}"`,
      `this restore point has: ${point.data.map((d) => d.name).join(', ')}`,
    );
  }
  const rel = (o.path ?? '').replace(/^\.?\/+/, '').replace(/\/+$/, '');
  const to = resolve(o.to);
  await mkdir(to, { recursive: true });
  const dest = join(to, basename(rel) || 'restored');
  if (snap.tags.format === 'tar') {
    const stream =
      snap.tags.volume !== undefined
        ? `${snap.tags.volume}.tar`
        : `${basename(snap.tags.bind_source ?? '') || 'root'}.tar`;
    const res = await pipeline(
      kopia.argv(['show'], [], [`${snap.rootObj}/${stream}`]),
      [
        'tar',
        '-xpf',
        '-',
        '--numeric-owner',
        '-C',
        to,
        '--strip-components',
        String(rel.split('/').length),
        '--',
        `./${rel}`,
      ],
      { env: kopia.env() },
      {},
    );
    if (res.consumer.code !== 0) {
      const parent = dirname(rel) === '.' ? '' : dirname(rel);
      const entries = await tarChildren(kopia, `${snap.rootObj}/${stream}`, parent);
      throw new UsageError(
        `"${rel}" is not in ${want} of ${point.backupId}: ${res.consumer.stderrTail.trim().split('\n')[0] ?? ''}`,
        `entries in /${parent}: ${entries.join(', ') || '(none)'}`,
      );
    }
  } else {
    const parent = dirname(rel) === '.' ? '' : `/${dirname(rel)}`;
    const entries = await kopia.ls(`${snap.id}${parent}`).catch(() => [] as string[]);
    const name = basename(rel);
    if (!entries.some((e) => e.replace(/\/$/, '') === name)) {
      throw new UsageError(
        `"${rel}" is not in ${want} of ${point.backupId}`,
        `entries in ${parent || '/'}: ${entries.join(', ') || '(none)'}`,
      );
    }
    await kopia.restore(`${snap.id}/${rel}`, dest);
  }
  ctx.out.line(`restored ${rel} from ${want} (${point.backupId}) to ${dest}`);
}

/** Names directly under `parent` in a tar stream (directories end with '/'), for "what exists" hints. */
async function tarChildren(kopia: Kopia, object: string, parent: string): Promise<string[]> {
  const res = await pipeline(
    kopia.argv(['show'], [], [object]),
    ['tar', '-tf', '-'],
    { env: kopia.env() },
    { maxStdoutBytes: 16 * 1024 * 1024 },
  ).catch(() => undefined);
  if (!res || res.consumer.code !== 0) return [];
  const prefix = parent ? `./${parent}/` : './';
  const names = new Set<string>();
  for (const line of res.consumer.stdout.split('\n')) {
    if (!line.startsWith(prefix) || line === prefix) continue;
    const rest = line.slice(prefix.length);
    const slash = rest.indexOf('/');
    names.add(slash < 0 ? rest : rest.slice(0, slash + 1));
  }
  return [...names].sort();
}

async function runRestore(ctx: Context, o: RestoreOpts, interactive: boolean): Promise<void> {
  const cfg = await ctx.config();
  const kopia = new Kopia(cfg.kopia);
  await kopia.assertSupported();
  if (!(await kopia.status())) {
    throw new KopiDockaError(`not connected to the repository at ${cfg.kopia.repositoryPath}`, {
      exitCode: ExitCode.REPOSITORY,
      hint: 'run `kopi-docka init` with the repository settings (on a new host: the same repository_path and password)',
    });
  }
  let points = await loadPoints(kopia, cfg, o);

  if (o.list) {
    if (o.unit !== undefined) points = points.filter((p) => p.unit === o.unit);
    if (ctx.out.json) ctx.out.data({ restorePoints: points });
    else printPoints(ctx, points);
    exitState.code = 0;
    return;
  }

  if (interactive) {
    const units = [...new Set(points.map((p) => p.unit))];
    if (units.length === 0)
      throw new KopiDockaError('no restore points in the repository for this host', {
        hint: 'use --host or --all-hosts for another machine',
      });
    o.unit ??= await choose(
      'Unit to restore',
      units.map((u) => ({ label: u, value: u })),
    );
    const wanted = o.backupId === 'latest' ? undefined : o.backupId;
    const mine = points.filter((p) => p.unit === o.unit && (!wanted || p.backupId === wanted));
    if (mine.length === 0) {
      throw new UsageError(
        `unknown backup_id "${o.backupId ?? ''}" for ${o.unit}`,
        knownPoints(points, o.unit),
      );
    }
    // With --all-hosts the same unit may come from several machines: show whose each point is.
    const manyHosts = new Set(mine.map((p) => p.host)).size > 1;
    const chosen = await choose(
      'Restore point',
      mine.map((p) => ({
        label: `${p.backupId}  ${formatBytes(p.sizeBytes)}${manyHosts ? `  host ${p.host}` : ''}${p.complete ? '' : `  INCOMPLETE: ${p.problems.join('; ')}`}`,
        value: p,
      })),
    );
    o.backupId = chosen.backupId;
    points = points.filter((p) => p.host === chosen.host);
    if (!chosen.complete) {
      o.allowIncomplete = await confirm(
        'This restore point is incomplete. Restore what it has anyway?',
        false,
      );
      if (!o.allowIncomplete) throw new KopiDockaError('cancelled', { exitCode: ExitCode.FAILURE });
    }
    const def = defaultWorkDir(cfg, chosen);
    o.to ??= (await ask(`Restore into directory [${def}]`)) || def;
  } else if (!o.unit) {
    throw new UsageError(
      'which unit? pass --unit U (and --backup-id ID or latest), or --list',
      'on a terminal, `kopi-docka restore` alone starts the wizard',
    );
  }

  const point = pickPoint(points, o);
  if (o.path !== undefined) {
    await restoreSinglePath(ctx, kopia, point, o);
    exitState.code = 0;
    return;
  }

  const workDir = o.to ? resolve(o.to) : defaultWorkDir(cfg, point);
  if (!isAbsolute(workDir)) throw new UsageError(`--to must be a directory path: ${o.to ?? ''}`);
  await mkdir(workDir, { recursive: true, mode: 0o700 });
  const recipe = await restoreRecipe(kopia, point, workDir);
  const entries = selectEntries(recipe.manifest, o.volume);
  const data = await writeRestoreScripts(cfg, kopia, point, recipe, entries, {
    allowIncomplete: o.allowIncomplete ?? false,
  });

  let execute = o.execute ?? false;
  const safety = new Map<DataRestore, string>();
  if (interactive && !execute && data.length > 0)
    execute = await confirm('Run the restore scripts now?', false);
  if (execute) {
    const lock = await acquireLock(cfg.stateDir, 'restore');
    try {
      // Every refusal before the first script runs: stopping half-way through a unit's data sources
      // would leave it half old, half restored.
      for (const d of data) {
        if (o.yes || !(await targetHasData(d))) continue;
        // A bind is restored to its target, which need not be where it was backed up from: name that.
        const what =
          d.entry.type === 'bind' && d.target !== d.entry.name
            ? `${d.target} (bind ${d.entry.name} of the backup)`
            : `${d.entry.type} ${d.entry.name}`;
        const ok =
          interactive && (await confirm(`${what} is not empty; replace it (a safety copy is kept)?`, false));
        if (!ok) {
          throw new KopiDockaError(`${what} is not empty: refusing to overwrite it`, {
            exitCode: ExitCode.USAGE,
            hint: `pass --yes to replace it (a safety copy is written under ${join(workDir, 'safety')} first), or restore into an empty target`,
          });
        }
      }
      for (const d of data) {
        ctx.log.info(`restoring ${d.entry.type} ${d.entry.name} → ${d.note}`);
        const done = await executeScript(d, cfg.kopia.password, (l) => ctx.log.info(`  ${l}`));
        if (done.safetyCopy) safety.set(d, done.safetyCopy);
      }
    } finally {
      await lock.release();
    }
  }
  if (ctx.out.json) {
    ctx.out.data({
      unit: point.unit,
      backupId: point.backupId,
      workDir,
      projectDir: recipe.projectDir,
      composeFiles: recipe.composeFiles,
      environmentFiles: recipe.environmentFiles ?? [],
      executed: execute,
      data: data.map((d) => ({
        type: d.entry.type,
        name: d.entry.name,
        target: d.target,
        script: d.scriptPath,
        safetyCopy: safety.get(d) ?? null,
      })),
      redacted: recipe.redacted,
      warnings: restoreCaveats(recipe.manifest),
    });
  } else await printNextSteps(ctx, recipe, data, execute, safety);
  exitState.code = 0;
}

export function register(program: Command): void {
  program
    .command('restore')
    .description('restore a unit: a wizard on a terminal, or scripted with --unit/--backup-id')
    .option('--list', 'list restore points (grouped by unit and backup_id, newest first)')
    .option('-u, --unit <name>', 'the unit to restore')
    .option('-b, --backup-id <id>', 'the restore point (a backup_id, or "latest")')
    .option(
      '--to <dir>',
      'working directory for the recipe and scripts (default /var/lib/kopi-docka/restore/<unit>/<backup_id>)',
    )
    .option(
      '--volume <name>',
      'restore only this volume or bind mount (repeatable)',
      (v: string, p: string[]) => [...p, v],
      [] as string[],
    )
    .option(
      '--path <path>',
      'restore just this file or directory of one --volume into --to (no container is stopped)',
    )
    .option('--execute', 'run the restore scripts now (stop users, safety copy, restore, restart)')
    .option('-y, --yes', 'with --execute: replace non-empty volumes (a safety copy is always taken first)')
    .option('--host <host>', "restore another host's units (its Kopia identity host name)")
    .option('--all-hosts', 'list restore points of every host')
    .option('--allow-incomplete', 'accept an incomplete restore point')
    .option('--json', 'output as JSON')
    .action(async (opts, cmd) => {
      const ctx = createContext(globalsOf(cmd), opts.json);
      const o: RestoreOpts = { ...opts };
      const interactive =
        !o.list && !o.unit && !ctx.out.json && Boolean(process.stdin.isTTY && process.stdout.isTTY);
      await runRestore(ctx, o, interactive);
    });
}
