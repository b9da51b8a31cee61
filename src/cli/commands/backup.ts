import type { Command } from '@commander-js/extra-typings';
import type { Plan, StartStep, StopStep } from '../../core/plan.js';
import { ExitCode, InterruptedError } from '../../errors.js';
import type { RunRecord } from '../../pipeline/history.js';
import { checkExitCode, type CheckItem } from '../../pipeline/preflight.js';
import { runBackupAndNotify } from '../../pipeline/notify-run.js';
import { planBackupRun } from '../../pipeline/run.js';
import { createContext, exitState, globalsOf, type Context } from '../context.js';
import { formatBytes } from '../format.js';
import { paint, table } from '../output.js';
import { withSignals } from '../signals.js';
import { createProgress } from '../progress.js';

function printPlan(ctx: Context, plan: Plan): void {
  const { out } = ctx;
  out.line(
    paint(out, 'bold', `Backup plan ${plan.backupId}`) +
      ` — host ${plan.user}@${plan.host}, mode ${plan.volumeMode}, ${plan.parallelWorkers} parallel worker(s)`,
  );
  if (plan.excludePatterns.length > 0) out.line(`excludes: ${plan.excludePatterns.join(', ')}`);
  const r = plan.run;
  const keep = Object.entries(r.retention)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k.replace(/^keep/, '').toLowerCase()} ${n}`);
  out.line(
    `per call: ${r.taskTimeoutSec > 0 ? `at most ${r.taskTimeoutSec}s` : 'no time limit'}, ${r.stallTimeoutSec > 0 ? `stopped after ${r.stallTimeoutSec}s without progress` : 'no stall watchdog'}; start wait ${r.startTimeoutSec}s; ` +
      `retention ${keep.join(', ') || 'none'}; compression ${r.compression}`,
  );
  out.line(
    `warm pass: ${r.warmPass ?? 'never'} (snapshot while running, then the cold snapshot reads only what changed; never a restore point)`,
  );
  if (r.preBackupHook) out.line(`pre-backup hook:  ${r.preBackupHook.join(' ')}`);
  if (r.postBackupHook) out.line(`post-backup hook: ${r.postBackupHook.join(' ')}`);
  if (plan.units.length === 0) out.line('no units found: nothing would be backed up');
  for (const u of plan.units) {
    out.line();
    out.line(paint(out, 'bold', `unit ${u.unit}`) + ` (${u.kind}, ${u.containers.length} container(s))`);
    // Another unit's container in the stop list says whose it is and why it is stopped.
    const other = (s: StopStep | StartStep) =>
      s.otherUnit ? `, unit ${s.otherUnit.unit}: ${s.otherUnit.why}` : '';
    out.line(
      `  stop:    ${u.stop.length ? u.stop.map((s) => `${s.container} (${s.timeoutSec}s${other(s)})`).join(' → ') : '(nothing: no data to protect, or nothing running)'}`,
    );
    out.line(`  recipe:  ${u.recipe.composeFiles.join(', ') || '(no compose file)'} → ${u.recipe.kopiaPath}`);
    for (const s of u.sources) {
      const size = s.sizeBytes === undefined ? 'size unknown' : formatBytes(s.sizeBytes);
      const via = s.device === undefined ? '' : 'bind-type volume, read at its device ';
      const anon = s.anonymous ? ', anonymous' : '';
      out.line(`  ${s.type.padEnd(6)}   ${s.name} (${via}${s.hostPath}, ${size}${anon}) → ${s.kopiaPath}`);
      if (s.storedAsTarBecause?.length) {
        out.line(`           stored as a tar stream: ${s.storedAsTarBecause.join('; ')}`);
      }
      if (s.warm) {
        const tarNote =
          s.warm.warm && (plan.volumeMode === 'tar' || s.storedAsTarBecause?.length)
            ? ' — tar: the cold pass still reads and hashes the whole stream; the warm pass only spares it uploading new chunks'
            : '';
        out.line(`           warm pass: ${s.warm.warm ? 'yes' : 'no'} (${s.warm.why})${tarNote}`);
      }
    }
    out.line(
      `  start:   ${u.start.length ? u.start.map((s) => `${s.container}${s.waitHealthy ? ' (wait healthy)' : s.noWait ? ' (not waited for: was restarting)' : ''}${s.otherUnit ? ` (unit ${s.otherUnit.unit})` : ''}`).join(' → ') : '-'}`,
    );
    const notStarted = u.containers.filter(
      (c) =>
        !u.start.some((s) => s.id === c.id) &&
        !u.completed.some((d) => d.id === c.id) &&
        !u.leftAsIs.some((d) => d.id === c.id) &&
        c.state !== 'running',
    );
    if (notStarted.length) out.line(`  stays stopped: ${notStarted.map((c) => c.name).join(', ')}`);
    if (u.leftAsIs.length) {
      out.line(
        `  left as it is (not stopped): ${u.leftAsIs.map((c) => `${c.container} (${c.why})`).join(', ')}`,
      );
    }
    for (const x of u.uncaptured) {
      out.line(paint(out, 'red', `  NOT CAPTURED (the unit will be reported failed): ${x.message}`));
      out.line(`    hint: ${x.hint}`);
    }
    if (u.completed.length) {
      out.line(`  completed (one-shot, left as it is): ${u.completed.map((c) => c.container).join(', ')}`);
    }
    out.line(`  expected snapshots: ${u.expectedSnapshots} (recipe + ${u.sources.length} data)`);
    for (const c of u.coverage.filter((e) => e.status !== 'backed-up')) {
      out.line(
        `  ${c.status}: ${c.container} ${c.kind} ${c.source} → ${c.destination}${c.reason ? ` (${c.reason})` : ''}`,
      );
    }
    for (const w of u.warnings) out.line(paint(out, 'yellow', `  warning: ${w}`));
  }
}

function printPreflight(ctx: Context, items: CheckItem[]): void {
  ctx.out.line();
  // A check skipped because an earlier one failed adds nothing: the earlier one says it.
  const failing = items.filter((i) => !i.ok && !i.skipped);
  ctx.out.line(
    failing.length === 0
      ? 'pre-flight: all checks pass (docker, kopia, repository connected and writable, lock free)'
      : paint(ctx.out, 'red', 'pre-flight: the run would stop here, before stopping anything:'),
  );
  for (const i of failing) {
    ctx.out.line(paint(ctx.out, 'red', `  FAIL ${i.name}: ${i.detail}`));
    if (i.hint) ctx.out.line(`       hint: ${i.hint}`);
  }
}

function printSummary(ctx: Context, rec: RunRecord): void {
  ctx.out.line();
  ctx.out.line(
    table(
      ['UNIT', 'STATUS', 'DOWNTIME(s)', 'DATA', 'SNAPSHOTS'],
      rec.units.map((u) => [
        u.unit,
        u.status,
        u.downtimeSec.toFixed(1),
        formatBytes(u.bytes),
        String(u.snapshots.length),
      ]),
    ),
  );
  for (const u of rec.units) {
    if (u.error) ctx.out.line(paint(ctx.out, 'red', `${u.unit}: ${u.error}`));
    // What a unit could not protect as it should is said in the summary, not only in the JSON.
    for (const w of u.warnings) ctx.out.line(paint(ctx.out, 'yellow', `${u.unit}: warning: ${w}`));
  }
}

export function register(program: Command): void {
  program
    .command('backup')
    .description('cold backup of every unit (or --unit U): stop, snapshot recipe and data, start, retention')
    .option(
      '--dry-run',
      'print the plan and the pre-flight verdicts, change nothing (exit code: what the run would get before stopping anything)',
    )
    .option(
      '-u, --unit <name>',
      'back up only this unit (repeatable)',
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    )
    .option('--json', 'print the plan (dry-run) or the run summary as JSON')
    .option(
      '--update-recovery',
      'after the run, write a disaster-recovery bundle (as update_recovery_bundle = true)',
    )
    .action(async (opts, cmd) => {
      const ctx = createContext(globalsOf(cmd), opts.json);
      const cfg = await ctx.config();
      try {
        if (opts.dryRun) {
          const { plan, preflight } = await planBackupRun(
            cfg,
            { docker: ctx.docker(), kopia: ctx.kopia(), log: ctx.log },
            opts.unit,
          );
          const code = checkExitCode(preflight);
          if (ctx.out.json) ctx.out.data({ dryRun: true, plan, preflight, exitCode: code });
          else {
            printPlan(ctx, plan);
            printPreflight(ctx, preflight);
          }
          // The dry-run fails where the run would fail before stopping anything, with the same code.
          exitState.code = code;
          return;
        }
        const rec = await withSignals(ctx.log, async (signal) => {
          const progress = ctx.out.json ? undefined : createProgress(process.stderr);
          ctx.log.around = progress?.around;
          // The run with its alerts ([notifications]): heartbeat, and one message when it failed.
          return runBackupAndNotify(
            cfg,
            { docker: ctx.docker(), kopia: ctx.kopia(), log: ctx.log, progress },
            { unitNames: opts.unit, signal, updateRecovery: opts.updateRecovery },
          ).finally(() => (ctx.log.around = undefined));
        });
        if (ctx.out.json) ctx.out.data(rec);
        else printSummary(ctx, rec);
        if (rec.interrupted) throw new InterruptedError(rec.interrupted as NodeJS.Signals);
        exitState.code = rec.units.every((u) => u.status === 'ok') ? ExitCode.OK : ExitCode.FAILURE;
      } finally {
        ctx.close();
      }
    });
}
