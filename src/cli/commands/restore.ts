import { join, relative } from 'node:path';
import type { Command } from '@commander-js/extra-typings';
import { backendOf } from '../../config/keys-repository.js';
import { describeBackend } from '../../core/repository-backend.js';
import { detectCompose, type ComposeDetection } from '../../adapters/compose.js';
import { knownPoints, pickPoint, type RestorePoint } from '../../core/restore-points.js';
import { restoreCaveats } from '../../core/restore-warnings.js';
import { putBackCommand, shq } from '../../core/restore-script.js';
import { ExitCode, KopiDockaError, UsageError } from '../../errors.js';
import {
  assertConnected,
  defaultWorkDir,
  describeTarget,
  executeRestore,
  loadRestorePoints,
  prepareRestore,
  restoreSinglePath,
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
  force?: boolean;
  json?: boolean;
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
      r.inPlace
        ? `${r.manifest.unit} (backup ${r.manifest.backupId}) restored in place: project ${r.projectDir}; recipe and scripts in ${r.workDir}`
        : `Recipe of ${r.manifest.unit} (backup ${r.manifest.backupId}) restored to ${r.workDir}`,
    ),
  );
  for (const f of r.differing ?? []) {
    out.line(
      paint(
        out,
        'yellow',
        `  ${f.hostPath} differs from the backup: left as it is; the backed-up one is ${f.fromBackup}`,
      ),
    );
  }
  for (const d of data) {
    out.line(
      `  ${d.entry.type} ${d.entry.name} → ${d.note}${d.entry.type === 'bind' ? ` at ${d.target}` : ''}`,
    );
    out.line(`    script: ${d.scriptPath}${executed ? ' (done)' : ''}`);
    const copy = safety.get(d);
    if (copy) {
      out.line(`    safety copy of the previous contents: ${copy}`);
      const back = putBackCommand({ ...d.entry, target: d.target }, copy);
      out.line(`    to put it back (with its containers stopped): ${back}`);
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

async function runRestore(ctx: Context, o: RestoreOpts, interactive: boolean): Promise<void> {
  const cfg = await ctx.config();
  const kopia = ctx.kopia();
  await assertConnected(kopia, describeBackend(backendOf(cfg.kopia)));
  // All units, so that an unknown --unit can be answered with the units that do exist.
  let points = await loadRestorePoints(kopia, o.allHosts ? undefined : (o.host ?? cfg.kopia.hostname));

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
    // Empty: the default — in place when this host still has the project, else the state dir.
    const def = defaultWorkDir(cfg, chosen);
    o.to ??=
      (await ask(`Restore into directory (empty: in place if the project is on this host, else ${def})`)) ||
      undefined;
  } else if (!o.unit) {
    throw new UsageError(
      'which unit? pass --unit U (and --backup-id ID or latest), or --list',
      'on a terminal, `kopi-docka restore` alone starts the wizard',
    );
  }

  const point = pickPoint(points, { unit: o.unit, backupId: o.backupId, allowIncomplete: o.allowIncomplete });
  if (o.path !== undefined) {
    if (!o.to) throw new UsageError('--path needs --to DIR (where to put the file)');
    if (o.volume.length !== 1) throw new UsageError('--path needs exactly one --volume');
    const volume = o.volume[0] ?? '';
    const dest = await restoreSinglePath(kopia, point, { volume, path: o.path, to: o.to });
    ctx.out.line(`restored ${o.path} from ${volume} (${point.backupId}) to ${dest}`);
    exitState.code = 0;
    return;
  }

  const prepared = await prepareRestore(cfg, kopia, point, {
    to: o.to,
    volumes: o.volume,
    allowIncomplete: o.allowIncomplete ?? false,
    force: o.force ?? false,
  });
  const { workDir, recipe, data } = prepared;

  let execute = o.execute ?? false;
  let safety = new Map<DataRestore, string>();
  if (interactive && !execute && data.length > 0)
    execute = await confirm('Run the restore scripts now?', false);
  if (execute) {
    safety = await executeRestore(
      {
        stateDir: cfg.stateDir,
        kopia,
        docker: ctx.docker(),
        log: ctx.log,
        stopTimeoutSec: cfg.backup.stopTimeout,
      },
      prepared,
      async (d) =>
        Boolean(o.yes) ||
        (interactive &&
          (await confirm(`${describeTarget(d)} is not empty; replace it (a safety copy is kept)?`, false))),
    );
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
      inPlace: recipe.inPlace ?? false,
      differing: recipe.differing ?? [],
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
      'restore elsewhere (e.g. on a new host): the project, its binds, the recipe and scripts go under DIR. Default: in place — on the host the point is from, with its project directory still there, the project directory and bind paths themselves (each with a safety copy); else /var/lib/kopi-docka/restore/<unit>/<backup_id>',
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
    .option(
      '--force',
      'with --to: restore into a non-empty directory that is not an earlier restore of this point',
    )
    .option('--json', 'output as JSON')
    .action(async (opts, cmd) => {
      const ctx = createContext(globalsOf(cmd), opts.json);
      const o: RestoreOpts = { ...opts };
      const interactive =
        !o.list && !o.unit && !ctx.out.json && Boolean(process.stdin.isTTY && process.stdout.isTTY);
      try {
        await runRestore(ctx, o, interactive);
      } finally {
        ctx.close();
      }
    });
}
