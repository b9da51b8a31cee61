/**
 * The packaged artifact works: `npm pack` the repository (dist/ is built by scripts/test.sh), install
 * the tarball into a clean prefix from the registry like a user would, and run the installed bin.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { CLI_PATH, REPO_ROOT, makeTempDir, registerCleanup } from './helpers.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment minus what an enclosing `npm test` exports that would redirect a nested npm. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    const key = k.toLowerCase();
    if (
      key.startsWith('npm_package_') ||
      key.startsWith('npm_lifecycle_') ||
      key === 'npm_config_prefix' ||
      key === 'npm_config_local_prefix' ||
      key === 'init_cwd'
    ) {
      continue;
    }
    env[k] = v;
  }
  return env;
}

function run(command: string, args: string[], cwd: string, timeoutMs = 240_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function ok(r: Run, what: string): Run {
  assert.equal(r.code, 0, `${what} failed (exit ${r.code})\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  return r;
}

interface PackEntry {
  filename: string;
  files: { path: string }[];
}

void test('npm pack → npm install → the installed kopi-docka bin runs', { timeout: 600_000 }, async (t) => {
  const pkg = JSON.parse(await readFile(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {
    name: string;
    version: string;
  };
  const tmp = await makeTempDir('pack');
  registerCleanup(t, () => rm(tmp, { recursive: true, force: true }));

  const packed = ok(await run('npm', ['pack', '--json', '--pack-destination', tmp], REPO_ROOT), 'npm pack');
  // npm prints the JSON array last; anything a lifecycle script printed comes before it.
  const entries = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as PackEntry[];
  const entry = entries[0];
  assert.ok(entry, `npm pack --json printed no entry:\n${packed.stdout}`);
  const files = entry.files.map((f) => f.path);
  assert.ok(files.includes('package.json'), 'package.json is packed');
  assert.ok(files.includes('dist/main.js'), `dist/main.js is packed (files: ${files.join(', ')})`);
  const leaked = files.filter((f) => /^(src|test|bench|scripts|node_modules)\//.test(f));
  assert.deepEqual(leaked, [], 'sources, tests and scripts stay out of the package');

  const tarball = path.join(tmp, entry.filename);
  const prefix = path.join(tmp, 'prefix');
  ok(
    await run(
      'npm',
      ['install', '--prefix', prefix, '--no-audit', '--no-fund', '--omit=dev', '--loglevel=error', tarball],
      tmp,
    ),
    'npm install <tarball>',
  );

  const bin = path.join(prefix, 'node_modules', '.bin', 'kopi-docka');
  const version = ok(await run(bin, ['--version'], tmp, 30_000), 'kopi-docka --version');
  assert.equal(version.stdout.trim(), pkg.version, 'the installed CLI reports the package.json version');

  const help = ok(await run(bin, ['--help'], tmp, 30_000), 'kopi-docka --help');
  assert.match(help.stdout, /Usage/);
  assert.match(help.stdout, /kopi-docka/);
  assert.match(help.stdout, /^\s+backup\b/m, 'the packaged CLI has the backup command');
  // The packaged CLI is the same program as the built one: same commands and options.
  const localHelp = ok(await run(process.execPath, [CLI_PATH, '--help'], REPO_ROOT, 30_000), 'dist --help');
  assert.equal(help.stdout, localHelp.stdout, 'packaged --help equals dist/main.js --help');
});
