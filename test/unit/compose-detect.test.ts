/**
 * Compose detection without running anything: parsing what `docker compose version --short` and
 * `docker-compose version --short` print, the choice between them (v2 preferred, classified by the
 * printed version, not the command name) through a fake runner, and what `doctor` and `restore` make of
 * the result.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  COMPOSE_PROBE_TIMEOUT_MS,
  composeFlavourOf,
  detectCompose,
  parseComposeVersion,
  type ComposeDetection,
  type ComposeRunner,
} from '../../src/adapters/compose.js';
import { MAX_API_VERSION, MIN_API_VERSION } from '../../src/adapters/docker.js';
import { COMPOSE_V1_HINT, composeFinding, dockerFindings } from '../../src/cli/commands/doctor.js';
import { composeAdvice } from '../../src/cli/commands/restore.js';

describe('parseComposeVersion', () => {
  const cases: { text: string; want: { version: string; major: number } | undefined }[] = [
    { text: '1.29.2\n', want: { version: '1.29.2', major: 1 } }, // Debian's docker-compose, --short
    { text: '2.40.3\n', want: { version: '2.40.3', major: 2 } }, // the v2 plugin, --short
    { text: 'v2.17.3\n', want: { version: '2.17.3', major: 2 } }, // early v2 kept the "v"
    { text: '2.20.2-desktop.1\n', want: { version: '2.20.2-desktop.1', major: 2 } },
    { text: '5.0.1\n', want: { version: '5.0.1', major: 5 } }, // the Go Compose went on to 5.x
    { text: 'Docker Compose version v2.40.3\n', want: { version: '2.40.3', major: 2 } },
    {
      text: 'docker-compose version 1.29.2, build 5becea4c\ndocker-py version: 5.0.0\n',
      want: { version: '1.29.2', major: 1 },
    },
    { text: '\n  1.25.0  \n', want: { version: '1.25.0', major: 1 } },
    { text: 'dev\n', want: undefined }, // a build without a version stamp
    { text: '', want: undefined },
    { text: 'build 1a2b3c\n', want: undefined },
  ];
  for (const c of cases) {
    it(`${JSON.stringify(c.text)} → ${c.want ? c.want.version : 'undefined'}`, () => {
      assert.deepEqual(parseComposeVersion(c.text), c.want);
    });
  }
});

describe('composeFlavourOf', () => {
  it('1 is v1; 2 and later are the v2 line; 0 is no Compose', () => {
    assert.equal(composeFlavourOf(1), 'v1');
    assert.equal(composeFlavourOf(2), 'v2');
    assert.equal(composeFlavourOf(5), 'v2');
    assert.equal(composeFlavourOf(0), undefined);
  });
});

type Answer = { code: number | null; stdout?: string; stderr?: string; timedOut?: boolean } | 'ENOENT';

/** A runner answering `<cmd> version --short` per command ("docker compose" / "docker-compose"). */
function fakeRunner(answers: Record<string, Answer>): { runner: ComposeRunner; calls: string[][] } {
  const calls: string[][] = [];
  const runner: ComposeRunner = (argv, opts) => {
    calls.push([...argv]);
    assert.equal(opts.timeoutMs, COMPOSE_PROBE_TIMEOUT_MS, 'every probe has a timeout');
    assert.deepEqual(argv.slice(-2), ['version', '--short']);
    const a = answers[argv.slice(0, -2).join(' ')] ?? 'ENOENT';
    if (a === 'ENOENT') {
      return Promise.reject(Object.assign(new Error(`spawn ${argv[0]} ENOENT`), { code: 'ENOENT' }));
    }
    return Promise.resolve({
      code: a.code,
      stdout: a.stdout ?? '',
      stderrTail: a.stderr ?? '',
      timedOut: a.timedOut ?? false,
    });
  };
  return { runner, calls };
}

describe('detectCompose', () => {
  it('the v2 plugin wins, and docker-compose is not asked', async () => {
    const { runner, calls } = fakeRunner({
      'docker compose': { code: 0, stdout: '2.40.3\n' },
      'docker-compose': { code: 0, stdout: '1.29.2\n' },
    });
    assert.deepEqual(await detectCompose(runner), {
      flavour: 'v2',
      version: '2.40.3',
      argv: ['docker', 'compose'],
    });
    assert.deepEqual(calls, [['docker', 'compose', 'version', '--short']]);
  });

  it('without the plugin, Debian docker-compose 1.29.2 is v1', async () => {
    const { runner, calls } = fakeRunner({
      'docker compose': { code: 1, stderr: 'docker: unknown command: docker compose\n\nRun …' },
      'docker-compose': { code: 0, stdout: '1.29.2\n' },
    });
    assert.deepEqual(await detectCompose(runner), {
      flavour: 'v1',
      version: '1.29.2',
      argv: ['docker-compose'],
    });
    assert.equal(calls.length, 2);
  });

  it('a docker-compose that prints 2.x is v2, run as docker-compose', async () => {
    const { runner } = fakeRunner({
      'docker compose': { code: 1, stderr: "docker: 'compose' is not a docker command." },
      'docker-compose': { code: 0, stdout: 'v2.24.6\n' },
    });
    assert.deepEqual(await detectCompose(runner), {
      flavour: 'v2',
      version: '2.24.6',
      argv: ['docker-compose'],
    });
  });

  it('a `docker compose` that prints 1.x is v1, and a v2 docker-compose beside it is preferred', async () => {
    const both = fakeRunner({
      'docker compose': { code: 0, stdout: '1.0.17\n' },
      'docker-compose': { code: 0, stdout: '2.40.3\n' },
    });
    assert.deepEqual(await detectCompose(both.runner), {
      flavour: 'v2',
      version: '2.40.3',
      argv: ['docker-compose'],
    });
    const alone = fakeRunner({ 'docker compose': { code: 0, stdout: '1.0.17\n' } });
    assert.deepEqual(await detectCompose(alone.runner), {
      flavour: 'v1',
      version: '1.0.17',
      argv: ['docker', 'compose'],
    });
  });

  it('none: says per command why (missing, failing, hung, unreadable version)', async () => {
    const missing = await detectCompose(fakeRunner({}).runner);
    assert.deepEqual(missing, {
      flavour: 'none',
      argv: [],
      tried: ['docker compose: not found', 'docker-compose: not found'],
    });

    const odd = await detectCompose(
      fakeRunner({
        'docker compose': { code: null, timedOut: true },
        'docker-compose': { code: 0, stdout: 'dev\n' },
      }).runner,
    );
    assert.ok(odd.flavour === 'none', JSON.stringify(odd));
    assert.deepEqual(odd.tried, [
      `docker compose: no answer within ${COMPOSE_PROBE_TIMEOUT_MS / 1000} s`,
      'docker-compose: unreadable version "dev"',
    ]);

    const failing = await detectCompose(
      fakeRunner({
        'docker compose': { code: 1, stderr: 'docker: unknown command: docker compose\n\nRun …' },
      }).runner,
    );
    assert.ok(failing.flavour === 'none', JSON.stringify(failing));
    assert.equal(
      failing.tried[0],
      'docker compose: exited with code 1 (docker: unknown command: docker compose)',
    );
  });
});

describe('doctor: compose and docker lines', () => {
  it('v2 is OK, v1 is a WARN with the end-of-life hint, none is a WARN (never FAIL)', () => {
    assert.deepEqual(composeFinding({ flavour: 'v2', version: '2.40.3', argv: ['docker', 'compose'] }), {
      check: 'compose',
      level: 'OK',
      detail: 'v2 2.40.3 (docker compose)',
    });
    assert.deepEqual(composeFinding({ flavour: 'v1', version: '1.29.2', argv: ['docker-compose'] }), {
      check: 'compose',
      level: 'WARN',
      detail: 'v1 1.29.2 (docker-compose)',
      hint: COMPOSE_V1_HINT,
    });
    assert.match(COMPOSE_V1_HINT, /end of life since 2023.*`docker compose`/);
    const none = composeFinding({ flavour: 'none', argv: [], tried: ['docker compose: not found'] });
    assert.equal(none.level, 'WARN');
    assert.equal(none.detail, 'not found (docker compose: not found)');
    assert.match(none.hint ?? '', /standalone containers need no Compose.*Compose v2 plugin/);
  });

  it('engine, negotiated API with the daemon range, storage driver', () => {
    const lines = dockerFindings({
      engineVersion: '29.0.1',
      apiVersion: '1.52',
      daemonApi: { min: '1.44', max: '1.52' },
      storageDriver: 'overlayfs',
      operatingSystem: 'Debian GNU/Linux 12 (bookworm)',
      platform: 'linux/amd64',
    });
    assert.deepEqual(lines, [
      {
        check: 'docker engine',
        level: 'OK',
        detail: '29.0.1 (linux/amd64, Debian GNU/Linux 12 (bookworm))',
      },
      {
        check: 'docker api',
        level: 'OK',
        detail: `using 1.52; the daemon accepts 1.44–1.52 (kopi-docka speaks ${MIN_API_VERSION}–${MAX_API_VERSION})`,
      },
      { check: 'storage driver', level: 'OK', detail: 'overlayfs' },
    ]);
    const bare = dockerFindings({
      engineVersion: '20.10.24+dfsg1',
      apiVersion: '1.41',
      daemonApi: { min: undefined, max: '1.41' },
      storageDriver: undefined,
      operatingSystem: undefined,
      platform: undefined,
    });
    assert.equal(bare[0]?.detail, '20.10.24+dfsg1');
    assert.match(bare[1]?.detail ?? '', /^using 1\.41; the daemon accepts up to 1\.41 /);
    assert.equal(bare[2]?.detail, 'not reported by the daemon');
  });
});

describe('restore: the Compose command it prints', () => {
  const advice = (c: ComposeDetection) => composeAdvice(c);
  it('docker compose with v2; docker-compose with the legacy note only for v1', () => {
    assert.deepEqual(advice({ flavour: 'v2', version: '2.40.3', argv: ['docker', 'compose'] }), {
      command: 'docker compose',
      note: undefined,
    });
    assert.deepEqual(advice({ flavour: 'v2', version: '2.24.6', argv: ['docker-compose'] }), {
      command: 'docker-compose',
      note: undefined,
    });
    const v1 = advice({ flavour: 'v1', version: '1.29.2', argv: ['docker-compose'] });
    assert.equal(v1.command, 'docker-compose');
    assert.match(v1.note ?? '', /only the legacy docker-compose; with Compose v2 use `docker compose`/);
  });

  it('without any Compose: docker compose, and a note to install it', () => {
    const none = advice({ flavour: 'none', argv: [], tried: [] });
    assert.equal(none.command, 'docker compose');
    assert.match(none.note ?? '', /no Compose was found/);
  });
});
