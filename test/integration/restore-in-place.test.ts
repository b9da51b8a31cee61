/**
 * A same-host restore puts the stack back where it was (issue #11 §5), with the built CLI, real Docker
 * and real Kopia: in place by default (the project's own directory, binds included, each with a safety
 * copy), the unit's users stopped once for all its sources, `--to` elsewhere with exactly one runnable
 * project directory, `--to` a non-empty or a file refused with a clear message.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import {
  cli,
  cliOk,
  composeContainer,
  createStack,
  describeRun,
  docker,
  makeRepoConfig,
  makeTempDir,
  registerCleanup,
  TEST_IMAGE,
  uniqueName,
} from './helpers.js';

const execFileP = promisify(execFile);

/** A stack whose `app` uses a relative bind ./data and a named volume. */
function stackFiles(withVolume: boolean): Record<string, string> {
  return {
    'docker-compose.yml': [
      'services:',
      '  app:',
      `    image: ${TEST_IMAGE}`,
      '    command: sleep 3600',
      '    volumes:',
      '      - ./data:/data',
      ...(withVolume ? ['      - vol:/vol'] : []),
      ...(withVolume ? ['volumes:', '  vol: {}'] : []),
      '',
    ].join('\n'),
    'data/config.txt': 'original bind contents\n',
  };
}

async function setup(t: TestContext, withVolume: boolean) {
  const repo = await makeRepoConfig(t, { prefix: 'inplace' });
  await cliOk(repo, ['init']);
  const s = await createStack(t, { name: uniqueName('inplace'), files: stackFiles(withVolume) });
  const app = await composeContainer(s.project, 'app');
  await cliOk(repo, ['backup', '--unit', s.project]);
  return { repo, s, app };
}

/**
 * How many times `container` was stopped between `sinceMs` (epoch ms) and now (docker events).
 * Fractional seconds on purpose: the backup in `setup` stops the app moments before, often within
 * the same second, and a whole-second `--since` counted that stop too.
 */
async function stopsSince(container: string, sinceMs: number): Promise<number> {
  const since = (sinceMs / 1000).toFixed(3);
  const until = ((Date.now() + 1000) / 1000).toFixed(3);
  const r = await docker([
    'events',
    '--since',
    since,
    '--until',
    until,
    '--filter',
    `container=${container}`,
    '--filter',
    'event=stop',
    '--format',
    '{{.Action}}',
  ]);
  return r.stdout.split('\n').filter((l) => l.trim() === 'stop').length;
}

describe('restore on the same host', () => {
  it('goes back in place by default: the bind in its own directory, a safety copy, the app stopped once', async (t) => {
    const { repo, s, app } = await setup(t, true);
    await writeFile(path.join(s.dir, 'data', 'config.txt'), 'changed after the backup\n');
    const since = Date.now();
    const r = await cliOk(repo, [
      'restore',
      '--unit',
      s.project,
      '--backup-id',
      'latest',
      '--execute',
      '--yes',
    ]);
    assert.match(r.stdout, /restored in place/, describeRun(r));
    assert.equal(await readFile(path.join(s.dir, 'data', 'config.txt'), 'utf8'), 'original bind contents\n');
    assert.match(r.stdout, /safety copy of the previous contents: /);
    // Two sources (the bind and the volume), one stop of their user.
    assert.equal(await stopsSince(app, since), 1);
    const state = (await docker(['inspect', '--format', '{{.State.Running}}', app])).stdout.trim();
    assert.equal(state, 'true', 'started again after the restore');
    // The next step runs from where the stack ran.
    assert.match(r.stdout, new RegExp(`cd '?${s.dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}'? && `));
    // The work dir holds the recipe and scripts, no second Compose project.
    const work = path.join(repo.stateDir, 'restore', s.project);
    const { stdout } = await execFileP('find', [work, '-name', 'docker-compose.yml']);
    assert.equal(stdout.trim(), '', `no compose file under ${work}`);
  });

  it('--to elsewhere: one runnable project directory, and a bind restored there stops nobody', async (t) => {
    const { repo, s, app } = await setup(t, false);
    const parent = await makeTempDir('inplace-to');
    registerCleanup(t, () => execFileP('rm', ['-rf', parent]).then(() => undefined));
    const to = path.join(parent, 'work');
    const since = Date.now();
    await cliOk(repo, [
      'restore',
      '--unit',
      s.project,
      '--backup-id',
      'latest',
      '--to',
      to,
      '--execute',
      '--yes',
    ]);
    const { stdout } = await execFileP('find', [to, '-name', 'docker-compose.yml']);
    assert.deepEqual(stdout.trim().split('\n'), [path.join(to, s.project, 'docker-compose.yml')]);
    assert.equal(
      await readFile(path.join(to, s.project, 'data', 'config.txt'), 'utf8'),
      'original bind contents\n',
    );
    assert.equal(await stopsSince(app, since), 0, 'the running app does not use the new directory');
  });

  it('--to a non-empty directory is refused without --force; --to a file is a clear usage error', async (t) => {
    const { repo, s } = await setup(t, false);
    const dir = await makeTempDir('inplace-busy');
    registerCleanup(t, () => execFileP('rm', ['-rf', dir]).then(() => undefined));
    await mkdir(path.join(dir, 'someone'));
    await writeFile(path.join(dir, 'someone', 'data.txt'), 'not ours\n');
    const refused = await cli(repo, ['restore', '--unit', s.project, '--backup-id', 'latest', '--to', dir]);
    assert.equal(refused.code, 2, describeRun(refused));
    assert.match(refused.stderr, /not empty and is not an earlier restore/);
    assert.match(refused.stderr, /--force/);
    await cliOk(repo, ['restore', '--unit', s.project, '--backup-id', 'latest', '--to', dir, '--force']);
    assert.equal(await readFile(path.join(dir, 'someone', 'data.txt'), 'utf8'), 'not ours\n');
    assert.ok((await readdir(dir)).includes(s.project));
    const file = path.join(dir, 'a-file');
    await writeFile(file, 'x\n');
    const onFile = await cli(repo, ['restore', '--unit', s.project, '--backup-id', 'latest', '--to', file]);
    assert.equal(onFile.code, 2, describeRun(onFile));
    assert.doesNotMatch(onFile.stderr, /internal error/);
    assert.match(onFile.stderr, /a-file/);
  });
});
