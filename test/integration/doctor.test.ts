/**
 * `kopi-docka doctor` (the built CLI) against the real Docker daemon: the docker engine, the Engine API
 * version kopi-docka negotiated next to the daemon's range, the storage driver and the Compose flavour.
 *
 * Runs against the daemon the environment names (DOCKER_HOST, else the default socket); scripts/test.sh
 * runs the suite once per engine (Debian's 20.10, and the current engine of scripts/engine.sh). What to
 * expect is asked of the docker CLI and of the Compose commands themselves, so the test is honest
 * whichever Docker and Compose are installed. A second case hides `docker` from the CLI's PATH to meet
 * the WARN lines of a host with only Compose v1, or none, whatever this host has.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, symlink } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { MAX_API_VERSION, MIN_API_VERSION, compareApiVersions } from '../../src/adapters/docker.js';
import { which } from '../../src/adapters/process.js';
import { KOPIA_BIN, cli, cliOk, describeRun, makeRepoConfig } from './helpers.js';

const execFileP = promisify(execFile);

const DAEMON = process.env.DOCKER_HOST ?? 'the default socket';

interface Expected {
  engine: string;
  apiMax: string;
  apiMin: string;
  /** What kopi-docka must speak: the daemon's newest, capped at ours. */
  negotiated: string;
  storageDriver: string;
  compose: Compose | undefined;
}

/** Runs argv (no shell); its stdout, or undefined when it cannot run or fails. */
async function tryRun(argv: string[]): Promise<string | undefined> {
  const [cmd = '', ...args] = argv;
  try {
    const r = await execFileP(cmd, args, { timeout: 30_000 });
    return r.stdout;
  } catch {
    return undefined;
  }
}

type Compose = { flavour: 'v2' | 'v1'; version: string; command: string };

/** What `<argv> version --short` says it is; undefined when it does not run or prints no version. */
async function composeAt(argv: string[]): Promise<Compose | undefined> {
  const out = await tryRun([...argv, 'version', '--short']);
  const m = /^v?((\d+)\.\d+\S*)/.exec(out?.trim() ?? '');
  if (!m?.[1] || !m[2]) return undefined;
  return { flavour: Number(m[2]) >= 2 ? 'v2' : 'v1', version: m[1], command: argv.join(' ') };
}

/** The Compose this host has, asked the way a person would: the v2 plugin first, then docker-compose. */
async function installedCompose(): Promise<Compose | undefined> {
  const plugin = await composeAt(['docker', 'compose']);
  return plugin?.flavour === 'v2' ? plugin : ((await composeAt(['docker-compose'])) ?? plugin);
}

async function expected(): Promise<Expected> {
  const server = await tryRun(['docker', 'version', '--format', '{{json .Server}}']);
  assert.ok(server, `docker version failed against ${DAEMON}`);
  const s = JSON.parse(server) as { Version: string; ApiVersion: string; MinAPIVersion: string };
  const driver = (await tryRun(['docker', 'info', '--format', '{{.Driver}}']))?.trim();
  assert.ok(driver, 'docker info reports a storage driver');
  return {
    engine: s.Version,
    apiMax: s.ApiVersion,
    apiMin: s.MinAPIVersion,
    negotiated: compareApiVersions(s.ApiVersion, MAX_API_VERSION) > 0 ? MAX_API_VERSION : s.ApiVersion,
    storageDriver: driver,
    compose: await installedCompose(),
  };
}

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A doctor line `<LEVEL>  <check> <detail>` as a regex; `detail` is a regex source. */
function finding(level: string, check: string, detail: string): RegExp {
  return new RegExp(`^${level}\\s+${esc(check)}\\s+${detail}$`, 'm');
}

const V1_HINT =
  /^\s+→ docker-compose v1 is end of life since 2023; install the Compose v2 plugin \(`docker compose`\)$/m;

void describe(`doctor against the daemon at ${DAEMON}`, () => {
  void it('reports engine, negotiated API and range, storage driver and Compose; exit 0 without FAIL', async (t) => {
    const want = await expected();
    const repo = await makeRepoConfig(t, { prefix: 'doctor' });
    await cliOk(repo, ['init']);

    const r = await cli(repo, ['doctor']);
    const line = (re: RegExp): void => assert.match(r.stdout, re, describeRun(r));
    const engine = esc(want.engine);
    const api = esc(want.negotiated);
    line(finding('OK', 'docker', `reachable at .*\\(Docker ${engine}, API ${api}\\)`));
    line(finding('OK', 'docker engine', `${engine}( \\(.*\\))?`));
    line(
      finding(
        'OK',
        'docker api',
        `using ${api}; the daemon accepts ${esc(want.apiMin)}–${esc(want.apiMax)} ` +
          `\\(kopi-docka speaks ${esc(MIN_API_VERSION)}–${esc(MAX_API_VERSION)}\\)`,
      ),
    );
    line(finding('OK', 'storage driver', esc(want.storageDriver)));
    // What the test expects kopi-docka to speak lies inside the daemon's range.
    assert.ok(compareApiVersions(want.negotiated, want.apiMin) >= 0);
    assert.ok(compareApiVersions(want.negotiated, want.apiMax) <= 0);

    const c = want.compose;
    if (c === undefined) {
      line(finding('WARN', 'compose', 'not found \\(.+\\)'));
    } else {
      const detail = `${c.flavour} ${esc(c.version)} \\(${esc(c.command)}\\)`;
      line(finding(c.flavour === 'v2' ? 'OK' : 'WARN', 'compose', detail));
      if (c.flavour === 'v1') line(V1_HINT);
    }

    // WARN lines (e.g. Compose v1) never change the exit code; only FAIL does.
    assert.doesNotMatch(r.stdout, /^FAIL/m, describeRun(r));
    assert.equal(r.code, 0, describeRun(r));

    // The same findings as data.
    const j = await cli(repo, ['doctor', '--json']);
    const { findings } = JSON.parse(j.stdout) as { findings: { check: string; level: string }[] };
    const by = new Map(findings.map((f) => [f.check, f.level]));
    for (const name of ['docker', 'docker engine', 'docker api', 'storage driver']) {
      assert.equal(by.get(name), 'OK', `${name} in ${j.stdout}`);
    }
    assert.equal(by.get('compose'), c?.flavour === 'v2' ? 'OK' : 'WARN', j.stdout);
  });

  void it('only Compose v1, or none: a WARN with a hint, and still exit 0', async (t) => {
    const repo = await makeRepoConfig(t, { prefix: 'doctor-nocompose' });
    await cliOk(repo, ['init']);
    // A PATH without `docker` (so no `docker compose` plugin): the tools doctor looks at, and
    // docker-compose only in the second round. Docker itself is reached through its API, not the CLI.
    const bin = path.join(repo.dir, 'bin');
    await mkdir(bin);
    for (const tool of ['tar', 'getfattr', 'getfacl']) {
      const at = which(tool);
      if (at) await symlink(at, path.join(bin, tool));
    }
    const env = { ...repo.env, PATH: bin, KOPI_DOCKA_KOPIA_BIN: KOPIA_BIN };

    const none = await cli({ env }, ['doctor']);
    assert.match(
      none.stdout,
      finding('WARN', 'compose', 'not found \\(docker compose: not found; docker-compose: not found\\)'),
      describeRun(none),
    );
    assert.match(
      none.stdout,
      /^\s+→ standalone containers need no Compose, but starting a restored Compose stack does: install the Compose v2 plugin \(`docker compose`\)$/m,
    );
    assert.match(none.stdout, /^OK\s+docker\s+reachable/m, describeRun(none));
    assert.equal(none.code, 0, describeRun(none));

    const v1 = await composeAt(['docker-compose']);
    const v1Path = which('docker-compose');
    if (v1?.flavour !== 'v1' || !v1Path) {
      t.diagnostic('no docker-compose v1 on this host: the v1 round is left out');
      return;
    }
    await symlink(v1Path, path.join(bin, 'docker-compose'));
    const old = await cli({ env }, ['doctor']);
    assert.match(
      old.stdout,
      finding('WARN', 'compose', `v1 ${esc(v1.version)} \\(docker-compose\\)`),
      describeRun(old),
    );
    assert.match(old.stdout, V1_HINT, describeRun(old));
    assert.equal(old.code, 0, describeRun(old));
  });
});
