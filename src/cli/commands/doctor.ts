import { statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Command } from '@commander-js/extra-typings';
import { detectCompose, type ComposeDetection } from '../../adapters/compose.js';
import { MAX_API_VERSION, MIN_API_VERSION } from '../../adapters/docker.js';
import type { Kopia } from '../../adapters/kopia.js';
import { run } from '../../adapters/process.js';
import type { Config } from '../../config/types.js';
import { ExitCode } from '../../errors.js';
import {
  checkExitCode,
  decisiveChecks,
  runChecks,
  type CheckItem,
  type DockerFacts,
  type RepositoryFacts,
} from '../../pipeline/preflight.js';
import { readJournal } from '../../pipeline/journal.js';
import { processAlive } from '../../pipeline/lock.js';
import { createContext, exitState, globalsOf } from '../context.js';
import { formatBytes } from '../format.js';
import { paint } from '../output.js';

export type Level = 'OK' | 'WARN' | 'FAIL';
/** One line of `doctor`: `<LEVEL>  <check padded to 16> <detail>`, then `→ <hint>` unless OK. */
export interface Finding {
  check: string;
  level: Level;
  detail: string;
  hint?: string;
}

/** The hint of the compose line when only the legacy docker-compose is there. */
export const COMPOSE_V1_HINT =
  'docker-compose v1 is end of life since 2023; install the Compose v2 plugin (`docker compose`)';

/**
 * The lines about a reachable daemon: engine version, the Engine API version kopi-docka negotiated next
 * to the daemon's range (and ours), and the storage driver. Always OK: a daemon kopi-docka cannot use
 * has already failed the docker check, which then carries no facts.
 */
export function dockerFindings(d: DockerFacts): Finding[] {
  const where = [d.platform, d.operatingSystem].filter((x) => x !== undefined).join(', ');
  const range =
    d.daemonApi.min === undefined ? `up to ${d.daemonApi.max}` : `${d.daemonApi.min}–${d.daemonApi.max}`;
  return [
    { check: 'docker engine', level: 'OK', detail: `${d.engineVersion}${where ? ` (${where})` : ''}` },
    {
      check: 'docker api',
      level: 'OK',
      detail: `using ${d.apiVersion}; the daemon accepts ${range} (kopi-docka speaks ${MIN_API_VERSION}–${MAX_API_VERSION})`,
    },
    { check: 'storage driver', level: 'OK', detail: d.storageDriver ?? 'not reported by the daemon' },
  ];
}

/**
 * The compose line: OK for Compose v2; WARN for the end-of-life v1; WARN (never FAIL) without any,
 * because backups and standalone containers do not need Compose — only starting a restored stack does.
 */
export function composeFinding(c: ComposeDetection): Finding {
  if (c.flavour === 'none') {
    return {
      check: 'compose',
      level: 'WARN',
      detail: `not found (${c.tried.join('; ')})`,
      hint: 'standalone containers need no Compose, but starting a restored Compose stack does: install the Compose v2 plugin (`docker compose`)',
    };
  }
  const detail = `${c.flavour} ${c.version} (${c.argv.join(' ')})`;
  return c.flavour === 'v2'
    ? { check: 'compose', level: 'OK', detail }
    : { check: 'compose', level: 'WARN', detail, hint: COMPOSE_V1_HINT };
}

/** Free space of the nearest existing ancestor of `path` (the repository may not exist yet). */
async function freeSpace(path: string): Promise<{ free: number; at: string } | undefined> {
  for (let p = path; ; p = dirname(p)) {
    try {
      const s = await statfs(p);
      return { free: s.bavail * s.bsize, at: p };
    } catch {
      if (p === dirname(p)) return undefined;
    }
  }
}

/**
 * The backend line: which repository (no secrets), whether its storage answered, and the latency —
 * the wall time of `kopia repository status --json`, which reads the repository's format blob from
 * the storage. WARN (never FAIL: the repository line already fails) when it did not answer.
 */
export function backendFinding(r: RepositoryFacts): Finding {
  if (!r.connected) {
    return {
      check: 'backend',
      level: 'WARN',
      detail: `${r.backend}: not asked (not connected)`,
      hint: 'run `kopi-docka init`',
    };
  }
  return r.reachable
    ? {
        check: 'backend',
        level: 'OK',
        detail: `${r.backend}: reachable, repository status in ${r.latencyMs} ms`,
      }
    : {
        check: 'backend',
        level: 'WARN',
        detail: `${r.backend}: no answer from the repository (after ${r.latencyMs} ms)`,
        hint: 'see the repository line; check the network, the credentials and `[kopia] backend` keys',
      };
}

async function toolVersion(argv: string[]): Promise<string | undefined> {
  try {
    const r = await run(argv, { timeoutMs: 10_000 });
    return r.code === 0 ? (r.stdout.split('\n')[0] ?? '').trim() : undefined;
  } catch {
    return undefined;
  }
}

async function diagnose(cfg: Config, kopia: Kopia): Promise<{ findings: Finding[]; checks: CheckItem[] }> {
  const f: Finding[] = [];
  f.push({ check: 'node', level: 'OK', detail: process.version });

  for (const [tool, pkg] of [
    ['getfattr', 'attr'],
    ['getfacl', 'acl'],
  ] as const) {
    const found = await toolVersion([tool, '--version']);
    f.push(
      found
        ? { check: tool, level: 'OK', detail: found }
        : {
            check: tool,
            level: 'WARN',
            detail: 'not found',
            hint: `apt-get install ${pkg}: without it direct mode cannot keep ${tool === 'getfattr' ? 'extended attributes' : 'POSIX ACLs'}`,
          },
    );
  }

  f.push({
    check: 'config',
    level: cfg.warnings.length > 0 ? 'WARN' : 'OK',
    detail: cfg.file ? `${cfg.file}` : 'embedded default (no config file)',
    ...(cfg.warnings.length > 0 ? { hint: cfg.warnings.join('; ') } : {}),
  });

  // Docker, kopia, tar and the repository: the same checks as `kopi-docka check`. Compose is asked
  // meanwhile: it needs no daemon.
  const [checks, compose] = await Promise.all([runChecks(cfg, kopia), detectCompose()]);
  for (const c of checks) {
    // tar is only needed by the tar volume mode: missing, it is a warning in direct mode. A lock held
    // by a running backup is not a problem of this host: it is reported as it is.
    const level: Level =
      c.ok || c.name === 'lock'
        ? 'OK'
        : c.name === 'tar' && cfg.backup.volumeMode !== 'tar'
          ? 'WARN'
          : 'FAIL';
    f.push({ check: c.name, level, detail: c.detail, ...(c.hint === undefined ? {} : { hint: c.hint }) });
    if (c.docker) f.push(...dockerFindings(c.docker));
    if (c.repository) f.push(backendFinding(c.repository));
    if (c.name === 'docker') f.push(composeFinding(compose));
  }
  if (checks.some((c) => c.name === 'kopia' && c.ok)) {
    const owner = await kopia.maintenanceInfo().then(
      (m) => m.owner,
      () => undefined,
    );
    if (owner !== undefined) {
      f.push(
        owner === kopia.identity
          ? { check: 'maintenance', level: 'OK', detail: `this host (${owner}) runs repository maintenance` }
          : {
              check: 'maintenance',
              level: 'WARN',
              detail: `maintenance is owned by ${owner || '(nobody)'}, not ${kopia.identity}`,
              hint: "fine while that host runs backups; if it is gone, run `kopia maintenance set --owner=me` with kopi-docka's config file",
            },
      );
    }
  }

  // Free space is a local question only for a filesystem repository; a bucket or server says "full" itself.
  const spaces: [string, string][] = [['cache space', cfg.kopia.cacheDirectory]];
  if (kopia.backend.kind === 'filesystem') spaces.unshift(['repository space', cfg.kopia.repositoryPath]);
  for (const [what, path] of spaces) {
    const s = await freeSpace(path);
    if (!s) f.push({ check: what, level: 'WARN', detail: `cannot stat ${path}` });
    else {
      const low = s.free < 1024 ** 3;
      f.push({
        check: what,
        level: low ? 'WARN' : 'OK',
        detail: `${formatBytes(s.free)} free at ${s.at}`,
        ...(low ? { hint: 'less than 1 GiB free: backups may fail' } : {}),
      });
    }
  }

  const journal = await readJournal(cfg.stateDir).catch(() => undefined);
  if (journal) {
    const names = journal.containers.map((c) => c.name).join(', ');
    // A live run's journal is how it keeps its promise to restart: not a leftover.
    f.push(
      processAlive(journal.pid)
        ? {
            check: 'journal',
            level: 'OK',
            detail: `backup ${journal.backupId} is running (pid ${journal.pid}): ${names} stopped for its snapshot`,
          }
        : {
            check: 'journal',
            level: 'FAIL',
            detail: `backup ${journal.backupId} (pid ${journal.pid}, no longer running) left ${names} stopped`,
            hint: 'run `kopi-docka recover`',
          },
    );
  }
  return { findings: f, checks };
}

export function register(program: Command): void {
  program
    .command('doctor')
    .description(
      'check Docker (engine, API, storage driver), Compose, Kopia, tools, config, repository (backend, reachability, latency), free space and lock; OK / WARN / FAIL each',
    )
    .option('--json', 'print the findings as JSON')
    .action(async (opts, cmd) => {
      const ctx = createContext(globalsOf(cmd), opts.json);
      const cfg = await ctx.config();
      const { findings, checks } = await diagnose(cfg, ctx.kopia());
      if (ctx.out.json) ctx.out.data({ findings });
      for (const x of findings) {
        const tag = paint(
          ctx.out,
          x.level === 'OK' ? 'green' : x.level === 'WARN' ? 'yellow' : 'red',
          x.level.padEnd(4),
        );
        ctx.out.line(`${tag}  ${x.check.padEnd(16)} ${x.detail}`);
        if (x.hint && x.level !== 'OK') ctx.out.line(`      ${''.padEnd(16)} → ${x.hint}`);
      }
      // The pre-flight verdicts decide as in `check` (4, 6, 5); other FAILs give 1. A held lock and a
      // missing tar in direct mode are reported, not failures.
      const code = checkExitCode(decisiveChecks(checks, cfg, { lock: false }));
      exitState.code =
        code !== ExitCode.OK
          ? code
          : findings.some((x) => x.level === 'FAIL')
            ? ExitCode.FAILURE
            : ExitCode.OK;
    });
}
