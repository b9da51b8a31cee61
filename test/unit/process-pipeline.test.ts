/**
 * producer | consumer (src/adapters/process.ts) with real processes: every way one side can end must
 * end the pipeline, in bounded time, and say which side was the cause. Before the drain, a consumer
 * that died with the producer's output still buffered hung the pipeline forever (field case 01: tar
 * mode, repository full, containers left down).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pipeline } from '../../src/adapters/process.js';

// 10 MB through a consumer that reads 64 KiB and then gives up: far more than the pipe buffers hold.
const BIG_PRODUCER = ['sh', '-c', 'head -c 10000000 /dev/zero'];
const FAILING_CONSUMER = [
  'sh',
  '-c',
  'head -c 65536 >/dev/null; sleep 0.5; echo "ERROR cannot save pack: write: no space left on device" >&2; exit 1',
];

describe('pipeline', { timeout: 30_000 }, () => {
  it('ends when the consumer fails mid-stream, stops the producer, and names the consumer as the cause', async () => {
    const r = await pipeline(BIG_PRODUCER, FAILING_CONSUMER, {}, {});
    assert.equal(r.consumer.code, 1);
    assert.match(r.consumer.stderrTail, /no space left on device/);
    assert.equal(r.consumerFailedFirst, true);
    assert.notEqual(r.producer.code, 0, 'the producer was stopped, not left to finish');
  });

  it('ends on abort even while the consumer has stopped reading', async () => {
    const ac = new AbortController();
    const stalled = ['sh', '-c', 'head -c 65536 >/dev/null; sleep 60'];
    setTimeout(() => ac.abort(), 500);
    const t0 = Date.now();
    const r = await pipeline(BIG_PRODUCER, stalled, { signal: ac.signal }, { signal: ac.signal });
    assert.ok(r.producer.aborted && r.consumer.aborted);
    assert.ok(Date.now() - t0 < 15_000, `took ${Date.now() - t0} ms`);
  });

  it('a successful pipeline reports both sides ok and nobody failed first', async () => {
    const r = await pipeline(['sh', '-c', 'echo hello'], ['cat'], {}, {});
    assert.equal(r.producer.code, 0);
    assert.equal(r.consumer.code, 0);
    assert.equal(r.consumer.stdout, 'hello\n');
    assert.equal(r.consumerFailedFirst, false);
  });

  it('a failing producer ends the consumer with EOF and is reported as the producer’s failure', async () => {
    const r = await pipeline(['sh', '-c', 'echo partial; exit 2'], ['cat'], {}, {});
    assert.equal(r.producer.code, 2);
    assert.equal(r.consumer.code, 0);
    assert.equal(r.consumerFailedFirst, false);
  });

  it('a producer that cannot start does not leave the consumer waiting', async () => {
    await assert.rejects(pipeline(['/nonexistent/kd-producer'], ['cat'], {}, {}));
  });
});
