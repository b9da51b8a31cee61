/**
 * The restore wizard's prompts (src/cli/prompts.ts) driven through fake streams, one answer per
 * question like a person at a terminal: invalid answers are answered with what is accepted and asked
 * again, an option's name is accepted, and the end of input is "input ended", not "interrupted".
 */
import assert from 'node:assert/strict';
import { PassThrough, Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { ExitCode, InterruptedError } from '../../src/errors.js';
import {
  ask,
  choose,
  confirm,
  InputEndedError,
  optionNames,
  pickChoice,
  type PromptIO,
} from '../../src/cli/prompts.js';

interface Scripted {
  io: PromptIO;
  /** Everything written to the output so far. */
  output: () => string;
}

/**
 * A fake terminal: each time the output ends with a prompt (`: ` or `] `), the next answer is typed
 * (with Enter); `null` closes the input instead (Ctrl-D). When the answers run out, the input ends.
 */
function scripted(answers: (string | null)[]): Scripted {
  const input = new PassThrough();
  let out = '';
  const queue = [...answers];
  const output = new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      out += chunk.toString();
      if (out.endsWith(': ') || out.endsWith('] ')) {
        setImmediate(() => {
          const next = queue.shift();
          if (next === undefined || next === null) input.end();
          else input.write(`${next}\n`);
        });
      }
      cb();
    },
  });
  return { io: { input, output }, output: () => out };
}

const units = ['alpha', 'beta', 'gamma'].map((u) => ({ label: u, value: u }));

describe('choose', () => {
  it('takes a number', async () => {
    const t = scripted(['2']);
    assert.equal(await choose('Unit to restore', units, t.io), 'beta');
    assert.match(t.output(), /Unit to restore:\n {3}1\) alpha\n {3}2\) beta\n {3}3\) gamma\nchoose 1-3: $/);
  });

  it('takes the name typed exactly (the label, for units)', async () => {
    const t = scripted(['gamma']);
    assert.equal(await choose('Unit to restore', units, t.io), 'gamma');
  });

  for (const bad of ['9', '0', 'abc', '', '-1', '1.5', 'Gamma']) {
    it(`${JSON.stringify(bad)} is answered with what is accepted, then asked again`, async () => {
      const t = scripted([bad, '1']);
      assert.equal(await choose('Unit to restore', units, t.io), 'alpha');
      const out = t.output();
      assert.match(out, /enter a number from 1 to 3, or the name/);
      assert.equal(out.match(/choose 1-3: /g)?.length, 2, out);
    });
  }

  it('names the invalid answer', async () => {
    const t = scripted(['9', 'beta']);
    assert.equal(await choose('Unit to restore', units, t.io), 'beta');
    assert.match(t.output(), /"9" is not one of the choices: enter a number from 1 to 3, or the name/);
  });

  it('a restore point is chosen by its backup_id (the first word of its label)', async () => {
    const points = [
      { label: '2026-11-30T10-00-00Z  1.2 KiB', value: 'p1' },
      { label: '2026-11-29T10-00-00Z  1.1 KiB', value: 'p2' },
    ];
    const t = scripted(['2026-11-29T10-00-00Z']);
    assert.equal(await choose('Restore point', points, t.io), 'p2');
  });

  it('takes an option of `names` and says when a name is ambiguous', async () => {
    const opts = [
      { label: 'x  host a', value: 1, names: ['x'] },
      { label: 'x  host b', value: 2, names: ['x'] },
      { label: 'y', value: 3, names: ['y', 'why'] },
    ];
    assert.deepEqual(optionNames(opts[2] ?? { label: '', value: 0 }), ['y', 'why']);
    assert.equal(pickChoice('why', opts), 2);
    assert.match(String(pickChoice('x', opts)), /names 2 choices \(1, 2\): enter its number/);
    const t = scripted(['x', '2']);
    assert.equal(await choose('Pick', opts, t.io), 2);
  });

  it('one choice: "enter 1, or the name"', async () => {
    const t = scripted(['2', 'alpha']);
    assert.equal(await choose('Unit', [{ label: 'alpha', value: 'a' }], t.io), 'a');
    assert.match(t.output(), /enter 1, or the name/);
  });

  it('end of input (Ctrl-D) is "input ended", exit 1 — not "interrupted by SIGINT"', async () => {
    const t = scripted([null]);
    await assert.rejects(choose('Unit to restore', units, t.io), (err: unknown) => {
      assert.ok(err instanceof InputEndedError, String(err));
      assert.ok(!(err instanceof InterruptedError));
      assert.equal(err.message, 'no answer: input ended (Ctrl-D)');
      assert.equal(err.exitCode, ExitCode.FAILURE);
      assert.doesNotMatch(err.message, /SIGINT|interrupted/);
      return true;
    });
  });

  it('end of input after invalid answers is "input ended" too (no endless loop)', async () => {
    const t = scripted(['abc', 'zzz']);
    await assert.rejects(choose('Unit to restore', units, t.io), InputEndedError);
  });
});

describe('confirm', () => {
  it('y/yes/n/no in any case, Enter is the default', async () => {
    for (const [a, def, want] of [
      ['y', false, true],
      ['YES', false, true],
      ['n', true, false],
      ['No', true, false],
      ['', true, true],
      ['', false, false],
    ] as const) {
      assert.equal(await confirm('Go?', def, scripted([a]).io), want, `${a} (default ${String(def)})`);
    }
  });

  it('anything else: "answer y or n", asked again', async () => {
    const t = scripted(['maybe', 'y']);
    assert.equal(await confirm('Run the restore scripts now?', false, t.io), true);
    const out = t.output();
    assert.match(out, /answer y or n/);
    assert.equal(out.match(/Run the restore scripts now\? \[y\/N\] /g)?.length, 2, out);
  });

  it('end of input is "input ended", not SIGINT', async () => {
    await assert.rejects(confirm('Go?', false, scripted([null]).io), InputEndedError);
  });
});

describe('ask', () => {
  it('returns the trimmed answer, or "" for Enter', async () => {
    assert.equal(await ask('Restore into directory [/x]', scripted(['  /tmp/a  ']).io), '/tmp/a');
    assert.equal(await ask('Restore into directory [/x]', scripted(['']).io), '');
  });

  it('end of input is "input ended"', async () => {
    await assert.rejects(ask('Dir', scripted([null]).io), InputEndedError);
  });

  it('an input that has already ended fails at once instead of waiting', async () => {
    const input = new PassThrough();
    input.resume();
    input.end();
    await new Promise((r) => setImmediate(r));
    await assert.rejects(ask('Dir', { input, output: scripted([]).io.output }), InputEndedError);
  });
});
