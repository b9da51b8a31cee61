/**
 * The CLI on a backend other than filesystem, SFTP and S3 (which the disaster-recovery drill covers):
 * WebDAV (rclone serve webdav, basic auth) with the credentials in a 0600 credentials_file — `init`
 * creates, `check` and `doctor` report the backend, reachability and latency (no probe file: not a
 * local directory), a Compose unit is backed up and listed as a complete restore point. And the
 * credential errors at the point of use: S3 without keys (exit 3, the variable names, no values), a
 * credentials file readable by others (exit 3, chmod 600).
 *
 * Run under both engines (DOCKER_HOST unset, and the second engine with KD_TEST_COMPOSE=v2).
 */
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { s3Unavailable, startS3Server } from '../servers/s3.js';
import { startWebdavServer, webdavUnavailable } from '../servers/webdav.js';
import {
  TEST_IMAGE,
  createStack,
  describeRun,
  makeTempDir,
  registerCleanup,
  runCli,
  testEnv,
  uniqueName,
  type CliResult,
} from './helpers.js';

async function host(
  t: TestContext,
  kopiaKeys: string[],
): Promise<{ dir: string; env: Record<string, string> }> {
  const dir = await makeTempDir('backends-cli');
  registerCleanup(t, () => rm(dir, { recursive: true, force: true }));
  const state = path.join(dir, 'state');
  await mkdir(state);
  const config = path.join(dir, 'kopi-docka.conf');
  await writeFile(
    config,
    [
      '[kopia]',
      ...kopiaKeys,
      'password = cli-backend-pw-1',
      `cache_directory = ${path.join(dir, 'cache')}`,
      '[backup]',
      'stop_timeout = 10',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  return { dir, env: { ...testEnv(state), KOPI_DOCKA_CONFIG: config } };
}

const cli = (h: { env: Record<string, string> }, args: string[]): Promise<CliResult> =>
  runCli(args, { env: h.env, timeoutMs: 300_000 });

async function ok(h: { env: Record<string, string> }, args: string[]): Promise<CliResult> {
  const r = await cli(h, args);
  assert.equal(r.code, 0, `kopi-docka ${args.join(' ')}: ${describeRun(r)}`);
  return r;
}

describe('the CLI on more backends', { timeout: 600_000 }, () => {
  it(
    'webdav: init, check, doctor, backup, restore --list (credentials from a 0600 file)',
    { skip: webdavUnavailable() ?? false },
    async (t) => {
      const srv = await startWebdavServer();
      t.after(srv.stop);
      await mkdir(path.join(srv.dataDir, 'repo'));
      const h = await host(t, [
        'backend = webdav',
        `webdav_url = ${srv.url}repo/`,
        'credentials_file = webdav.credentials',
      ]);
      await writeFile(
        path.join(h.dir, 'webdav.credentials'),
        `# rclone serve webdav\nKOPIA_WEBDAV_USERNAME=${srv.username}\nKOPIA_WEBDAV_PASSWORD=${srv.password}\n`,
        { mode: 0o600 },
      );
      const init = await ok(h, ['init']);
      assert.match(init.stdout, /^created repository webdav http:\/\/127\.0\.0\.1:\d+\/repo\/ as /);
      const check = await ok(h, ['check']);
      assert.match(
        check.stdout,
        /OK\s+repository\s+webdav .* \(connected as .*; repository status answered in \d+ ms\)/,
      );
      assert.match(check.stdout, /OK\s+writable\s+webdav .*checked by repository status/);
      const doctor = await cli(h, ['doctor']);
      assert.match(doctor.stdout, /OK\s+backend\s+webdav .*: reachable, repository status in \d+ ms/);
      assert.doesNotMatch(doctor.stdout, /repository space/);
      const show = await ok(h, ['config', 'show']);
      for (const r of [init, check, doctor, show]) {
        assert.ok(!`${r.stdout}${r.stderr}`.includes(srv.password), 'the WebDAV password never appears');
      }

      const project = uniqueName('webdav');
      await createStack(t, {
        name: project,
        files: {
          'docker-compose.yml': `version: '2.4'\nservices:\n  app:\n    image: ${TEST_IMAGE}\n    command: ["sh", "-c", "echo hello > /data/x; while :; do sleep 1; done"]\n    volumes:\n      - data:/data\nvolumes:\n  data:\n`,
        },
      });
      await ok(h, ['backup', '--unit', project]);
      const list = JSON.parse((await ok(h, ['restore', '--list', '--unit', project, '--json'])).stdout) as {
        restorePoints: { unit: string; complete: boolean }[];
      };
      assert.equal(list.restorePoints.length, 1);
      assert.equal(list.restorePoints[0]?.complete, true);
    },
  );

  it(
    's3 without credentials: init exits 3 naming the variables; a credentials file readable by others is refused',
    { skip: s3Unavailable() ?? false },
    async (t) => {
      const srv = await startS3Server({ buckets: ['kd-nocreds'] });
      t.after(srv.stop);
      const keys = [
        'backend = s3',
        'bucket = kd-nocreds',
        `endpoint = ${srv.endpoint}`,
        'disable_tls = true',
      ];
      const h = await host(t, keys);
      const r = await cli(h, ['init']);
      assert.equal(r.code, 3, describeRun(r));
      assert.match(
        r.stderr,
        /s3 repository: needs an access key id and a secret access key \(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY\)/,
      );

      const loose = await host(t, [...keys, 'credentials_file = s3.credentials']);
      await writeFile(
        path.join(loose.dir, 's3.credentials'),
        `AWS_ACCESS_KEY_ID=${srv.accessKeyId}\nAWS_SECRET_ACCESS_KEY=${srv.secretAccessKey}\n`,
        { mode: 0o644 },
      );
      const l = await cli(loose, ['init']);
      assert.equal(l.code, 3, describeRun(l));
      assert.match(
        l.stderr,
        /credentials_file: credentials file .*s3\.credentials is accessible to group\/others \(mode 0644\)/,
      );
      assert.match(l.stderr, /chmod 600/);
      assert.ok(!l.stderr.includes(srv.secretAccessKey));
    },
  );
});
