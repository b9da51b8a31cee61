/**
 * The stall watchdog (issue #11 §1): no wall-clock limit by default, but a call whose progress counters
 * stop moving for stall_timeout is stopped — with real processes, and Kopia's real progress line shape.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { progressCounters } from '../../src/adapters/kopia.js';
import { describeResult } from '../../src/adapters/kopia/parse.js';
import { pipeline, run } from '../../src/adapters/process.js';

// Kopia 0.23's progress line, as printed every --progress-update-interval (spinner first).
const line = (spinner: string, hashed: string, eta: string) =>
  `${spinner} 1 hashing, 3 hashed (${hashed}), 0 cached (0 B), uploaded 0 B, estimated 1 GB (${eta})`;

describe('stall watchdog', { timeout: 30_000 }, () => {
  it('progress is the counters only: the spinner and the estimate moving are not progress', () => {
    assert.equal(
      progressCounters(line('*', '10 MB', '1%')),
      progressCounters(line('/', '10 MB', '2% 3m left')),
    );
    assert.notEqual(progressCounters(line('*', '10 MB', '1%')), progressCounters(line('*', '11 MB', '1%')));
    assert.equal(progressCounters('2026-11-30 ERROR something'), undefined);
  });

  it('stops a child whose progress line repeats the same counters, and says so', async () => {
    const same = `while :; do echo '${line('|', '5 MB', '1%')}' >&2; sleep 0.1; done`;
    const t0 = Date.now();
    const r = await run(['sh', '-c', same], {
      stallTimeoutMs: 800,
      progressKey: progressCounters,
      killGraceMs: 500,
    });
    assert.equal(r.stalled, true);
    assert.ok(Date.now() - t0 < 10_000);
    assert.match(describeResult(r), /no progress/);
  });

  it('lets a long call run while its counters move (no wall-clock limit)', async () => {
    const moving = `i=0; while [ $i -lt 20 ]; do i=$((i+1)); echo "* 1 hashing, $i hashed ($i MB), estimated 1 GB" >&2; sleep 0.1; done`;
    const r = await run(['sh', '-c', moving], { stallTimeoutMs: 800, progressKey: progressCounters });
    assert.equal(r.code, 0);
    assert.notEqual(r.stalled, true);
  });

  it('in a tar | kopia pipeline, a consumer that stalls is stopped and the producer with it', async () => {
    const stuck = `cat >/dev/null & while :; do echo '${line('-', '1 MB', '0%')}' >&2; sleep 0.1; done`;
    const r = await pipeline(
      ['sh', '-c', 'sleep 30'],
      ['sh', '-c', stuck],
      {},
      {
        stallTimeoutMs: 800,
        progressKey: progressCounters,
        killGraceMs: 500,
      },
    );
    assert.equal(r.consumer.stalled, true);
    assert.notEqual(r.producer.code, 0);
  });
});
