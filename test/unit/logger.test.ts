/**
 * The log line shapes (src/cli/logger.ts): `<N>` syslog priorities only when stderr really is the
 * stream JOURNAL_STREAM names (device:inode compared with fstat of fd 2, systemd.exec(5)); time and
 * level on any other non-TTY stream; one JSON object per line with --log-format json. The detection is
 * tested in child processes whose fd 2 is a file (playing journald's stream) or a pipe.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { Writable } from 'node:stream';
import { createLogger, eventFields, formatLine, isJournalStream } from '../../src/cli/logger.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const loggerModule = path.join(repoRoot, 'src/cli/logger.ts');
const dir = mkdtempSync(path.join(os.tmpdir(), 'kd-logger-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A script that logs one line per level with the process-wide stderr logger. */
const script = (format: 'text' | 'json') => `
import { createLogger, setLogFormat } from ${JSON.stringify(loggerModule)};
setLogFormat(${JSON.stringify(format)});
const log = createLogger('debug');
log.debug('d-msg'); log.info('web: snapshotting volume data'); log.warn('w-msg'); log.error('unit web failed: boom');
`;

/** Runs the script with fd 2 = `stderrFd` (a file) or a pipe, and JOURNAL_STREAM as given. */
function runChild(format: 'text' | 'json', journalStream: string | undefined, stderrFd?: number) {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.JOURNAL_STREAM;
  if (journalStream !== undefined) env.JOURNAL_STREAM = journalStream;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script(format)], {
    cwd: repoRoot,
    env,
    stdio: ['ignore', 'pipe', stderrFd ?? 'pipe'],
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  return r;
}

const devIno = (file: string) => {
  const st = statSync(file, { bigint: true });
  return `${st.dev}:${st.ino}`;
};

const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z /;

void describe('log lines on stderr', () => {
  void it('JOURNAL_STREAM naming fd 2 → <N> priority prefixes, no time', () => {
    const file = path.join(dir, 'journal-stream');
    const fd = openSync(file, 'w');
    try {
      runChild('text', devIno(file), fd);
    } finally {
      closeSync(fd);
    }
    assert.deepEqual(readFileSync(file, 'utf8').split('\n'), [
      '<7>d-msg',
      '<6>web: snapshotting volume data',
      '<4>w-msg',
      '<3>unit web failed: boom',
      '',
    ]);
  });

  void it('JOURNAL_STREAM set but fd 2 is a pipe (e.g. `2>&1 | tee`) → time and level, no <N>', () => {
    const file = path.join(dir, 'other');
    const fd = openSync(file, 'w');
    closeSync(fd);
    const r = runChild('text', devIno(file));
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 4, r.stderr);
    assert.doesNotMatch(r.stderr, /<\d>/);
    for (const l of lines) assert.match(l, TIME);
    assert.match(lines[0] ?? '', / debug {3}d-msg$/);
    assert.match(lines[1] ?? '', / info {4}web: snapshotting volume data$/);
    assert.match(lines[2] ?? '', / warning w-msg$/);
    assert.match(lines[3] ?? '', / error {3}unit web failed: boom$/);
  });

  void it('a file that is not the journal stream, no JOURNAL_STREAM → plain lines too', () => {
    const file = path.join(dir, 'cron-log');
    const fd = openSync(file, 'w');
    try {
      runChild('text', undefined, fd);
    } finally {
      closeSync(fd);
    }
    const text = readFileSync(file, 'utf8');
    assert.doesNotMatch(text, /<\d>/);
    for (const l of text.trimEnd().split('\n')) assert.match(l, TIME);
  });

  void it('--log-format json: one object per line with time, level, msg (+ unit when named)', () => {
    const r = runChild('json', undefined);
    const events = r.stderr
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(
      events.map((e) => [e.level, e.msg, e.unit]),
      [
        ['debug', 'd-msg', undefined],
        ['info', 'web: snapshotting volume data', 'web'],
        ['warning', 'w-msg', undefined],
        ['error', 'unit web failed: boom', 'web'],
      ],
    );
    for (const e of events) assert.match(String(e.time), /^\d{4}-\d{2}-\d{2}T.*Z$/);
  });

  void it('json in the journal: the <N> prefix journald strips, then the JSON object', () => {
    const file = path.join(dir, 'journal-json');
    const fd = openSync(file, 'w');
    try {
      runChild('json', devIno(file), fd);
    } finally {
      closeSync(fd);
    }
    const first = readFileSync(file, 'utf8').split('\n')[1] ?? '';
    assert.match(first, /^<6>\{"time":/);
    assert.equal((JSON.parse(first.slice(3)) as { unit: string }).unit, 'web');
  });
});

void describe('the final error line (main.ts)', () => {
  const runMain = (journalStream: (file: string) => string | undefined) => {
    const file = path.join(dir, `main-${Math.random().toString(36).slice(2)}`);
    const fd = openSync(file, 'w');
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.JOURNAL_STREAM;
    const js = journalStream(file);
    if (js !== undefined) env.JOURNAL_STREAM = js;
    try {
      const r = spawnSync(
        process.execPath,
        [
          '--import',
          'tsx',
          path.join(repoRoot, 'src/main.ts'),
          '--config',
          path.join(dir, 'missing.conf'),
          'check',
        ],
        { cwd: repoRoot, env, stdio: ['ignore', 'pipe', fd], encoding: 'utf8' },
      );
      assert.equal(r.status, 3);
    } finally {
      closeSync(fd);
    }
    return readFileSync(file, 'utf8');
  };

  void it('carries <3> when stderr is the journal, nothing otherwise', () => {
    assert.match(runMain(devIno), /^<3>error: config file .*missing\.conf.*\n<3>hint: /);
    assert.match(
      runMain(() => undefined),
      /^error: config file .*missing\.conf/,
    );
  });
});

void describe('logger pieces', () => {
  void it('isJournalStream: malformed or unset values are false', () => {
    assert.equal(isJournalStream(2, undefined), false);
    assert.equal(isJournalStream(2, 'garbage'), false);
    assert.equal(isJournalStream(2, '1:2:3'), false);
  });

  void it('a multi-line message stays one line', () => {
    const now = new Date('2026-11-30T02:00:00Z');
    assert.equal(formatLine('plain', 'info', 'a\nb', now), '2026-11-30T02:00:00.000Z info    a | b');
    assert.equal(formatLine('journal', 'error', 'a\r\nb', now), '<3>a | b');
    assert.equal(
      formatLine('json', 'info', 'a\nb', now),
      '{"time":"2026-11-30T02:00:00.000Z","level":"info","msg":"a\\nb"}',
    );
  });

  void it('eventFields: unit and backup_id as the pipeline names them', () => {
    assert.deepEqual(eventFields('backup 2026-11-30T02-00-00Z: 2 unit(s)'), {
      backup_id: '2026-11-30T02-00-00Z',
    });
    assert.deepEqual(eventFields('unit nextcloud done (down 3s)'), { unit: 'nextcloud' });
    assert.deepEqual(eventFields('nextcloud: snapshotting volume x'), { unit: 'nextcloud' });
    assert.deepEqual(eventFields('another kopi-docka backup is running'), {});
  });

  void it('level filter and explicit options', () => {
    const chunks: string[] = [];
    const sink = new Writable({
      write(c: Buffer, _e, cb) {
        chunks.push(c.toString());
        cb();
      },
    }) as unknown as NodeJS.WriteStream;
    const log = createLogger('warning', sink, { format: 'text', now: () => new Date(0) });
    log.info('hidden');
    log.warn('shown');
    assert.deepEqual(chunks, ['1970-01-01T00:00:00.000Z warning shown\n']);
  });
});
