/**
 * The Docker adapter against a fake Engine API on a unix socket: API version negotiation with daemons
 * of every era, and what a real daemon can't be made to do on demand (hang, answer 304/409).
 *
 * The fake behaves as moby does: `GET /version` and `/_ping` are unversioned; a versioned path below the
 * daemon's MinAPIVersion is answered with HTTP 400 "client version X is too old", one above its
 * ApiVersion with HTTP 400 "client version X is too new" — so a test passes only when the client picked
 * a version inside the daemon's range.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import {
  DockerEngineClient,
  MAX_API_VERSION,
  MIN_API_VERSION,
  compareApiVersions,
  negotiateApiVersion,
} from '../../src/adapters/docker.js';
import { DockerError } from '../../src/errors.js';

describe('negotiateApiVersion', () => {
  const cases: { min: string | undefined; max: string; want: string }[] = [
    { min: '1.24', max: '1.41', want: '1.41' }, // Debian 12's docker.io 20.10
    { min: '1.40', max: '1.56', want: MAX_API_VERSION }, // current moby, default minimum
    { min: '1.44', max: '1.52', want: '1.52' }, // Engine 29.0
    { min: '1.44', max: '1.60', want: MAX_API_VERSION }, // a future engine: we stay at what we tested
    { min: undefined, max: '1.41', want: '1.41' }, // a daemon that omits MinAPIVersion
    { min: undefined, max: '1.99', want: MAX_API_VERSION },
  ];
  for (const c of cases) {
    it(`daemon ${c.min ?? '(no minimum)'}–${c.max} → ${c.want}`, () => {
      assert.equal(negotiateApiVersion({ min: c.min, max: c.max }), c.want);
    });
  }

  it('never goes below the daemon minimum nor above our maximum', () => {
    const v = negotiateApiVersion({ min: '1.44', max: '1.52' });
    assert.ok(compareApiVersions(v, '1.44') >= 0 && compareApiVersions(v, MAX_API_VERSION) <= 0);
  });

  it('refuses a daemon older than we support, naming both ranges', () => {
    assert.throws(
      () => negotiateApiVersion({ min: '1.12', max: '1.40' }),
      (e) =>
        e instanceof DockerError &&
        e.message.includes('1.12–1.40') &&
        e.message.includes(`${MIN_API_VERSION}–${MAX_API_VERSION}`) &&
        /upgrade Docker/.test(e.hint ?? ''),
    );
  });

  it('refuses a daemon whose minimum is above what we speak, saying to upgrade kopi-docka', () => {
    assert.throws(
      () => negotiateApiVersion({ min: '1.70', max: '1.72' }),
      (e) =>
        e instanceof DockerError &&
        e.message.includes('1.70–1.72') &&
        e.message.includes(MAX_API_VERSION) &&
        /upgrade kopi-docka/.test(e.hint ?? ''),
    );
  });

  it('refuses unreadable versions', () => {
    assert.throws(() => negotiateApiVersion({ min: undefined, max: 'latest' }), DockerError);
    assert.throws(() => negotiateApiVersion({ min: 'x', max: '1.41' }), DockerError);
  });

  it('compares numerically (1.9 < 1.10)', () => {
    assert.ok(compareApiVersions('1.9', '1.10') < 0);
    assert.equal(compareApiVersions('1.44', '1.44'), 0);
  });
});

describe('Docker adapter against a fake Engine API', () => {
  let tmp = '';
  let server: http.Server | undefined;
  let sock = '';
  let daemon: { max: string; min: string | undefined } = { max: '1.41', min: '1.12' };
  const seen: string[] = [];
  const handlers = new Map<string, (res: http.ServerResponse) => void>();

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'kdt-fake-engine-'));
    sock = path.join(tmp, 'fake-docker.sock');
    server = http.createServer((req, res) => {
      const url = req.url ?? '';
      seen.push(`${req.method ?? ''} ${url}`);
      res.setHeader('Content-Type', 'application/json');
      if (url === '/version') {
        const body: Record<string, string> = { Version: 'fake', ApiVersion: daemon.max };
        if (daemon.min !== undefined) body.MinAPIVersion = daemon.min;
        res.end(JSON.stringify(body));
        return;
      }
      const m = /^\/v(\d+\.\d+)(\/[^?]*)/.exec(url);
      if (m) {
        const v = m[1] ?? '';
        if (daemon.min !== undefined && compareApiVersions(v, daemon.min) < 0) {
          res.statusCode = 400;
          res.end(
            JSON.stringify({
              message: `client version ${v} is too old. Minimum supported API version is ${daemon.min}, please upgrade your client to a newer version`,
            }),
          );
          return;
        }
        if (compareApiVersions(v, daemon.max) > 0) {
          res.statusCode = 400;
          res.end(
            JSON.stringify({
              message: `client version ${v} is too new. Maximum supported API version is ${daemon.max}`,
            }),
          );
          return;
        }
        const h = handlers.get(m[2] ?? '');
        if (h) {
          h(res);
          return;
        }
      }
      res.statusCode = 404;
      res.end(JSON.stringify({ message: `fake: no route ${url}` }));
    });
    await new Promise<void>((resolve) => server?.listen(sock, resolve));
  });

  after(async () => {
    server?.closeAllConnections();
    await new Promise<void>((resolve) => server?.close(() => resolve()));
    await rm(tmp, { recursive: true, force: true });
  });

  beforeEach(() => {
    seen.length = 0;
    handlers.clear();
    daemon = { max: '1.41', min: '1.12' };
  });

  const client = () => new DockerEngineClient({ host: `unix://${sock}` });
  const info = (res: http.ServerResponse) => res.end(JSON.stringify({ DockerRootDir: '/fake/docker' }));

  const ranges: { min: string | undefined; max: string; want: string }[] = [
    { min: '1.24', max: '1.41', want: '1.41' },
    { min: '1.40', max: '1.56', want: MAX_API_VERSION },
    { min: '1.44', max: '1.52', want: '1.52' },
    { min: '1.44', max: '1.60', want: MAX_API_VERSION },
    { min: undefined, max: '1.41', want: '1.41' },
  ];
  for (const r of ranges) {
    it(`talks to a daemon accepting ${r.min ?? '(no MinAPIVersion)'}–${r.max} with /v${r.want}`, async () => {
      daemon = { min: r.min, max: r.max };
      handlers.set('/info', info);
      const c = client();
      try {
        assert.equal((await c.info()).dockerRootDir, '/fake/docker');
        assert.equal(await c.apiVersion(), r.want);
        assert.deepEqual(seen, ['GET /version', `GET /v${r.want}/info`]);
      } finally {
        c.close();
      }
    });
  }

  it('negotiates once per client', async () => {
    daemon = { min: '1.44', max: '1.56' };
    handlers.set('/info', info);
    const c = client();
    await Promise.all([c.info(), c.info(), c.info()]);
    c.close();
    assert.equal(seen.filter((s) => s === 'GET /version').length, 1, seen.join('\n'));
  });

  it('refuses a daemon older than API 1.41 with one clear message naming both ranges', async () => {
    daemon = { min: '1.12', max: '1.40' };
    const c = client();
    await assert.rejects(
      c.info(),
      (e) =>
        e instanceof DockerError && /needs at least 1\.41/.test(e.message) && e.message.includes('1.12–1.40'),
    );
    c.close();
    assert.deepEqual(seen, ['GET /version'], 'no versioned call is tried');
  });

  it('refuses a daemon whose minimum is above what kopi-docka speaks', async () => {
    daemon = { min: '1.70', max: '1.72' };
    const c = client();
    await assert.rejects(
      c.listContainers(),
      (e) => e instanceof DockerError && /upgrade kopi-docka/.test(e.hint ?? ''),
    );
    c.close();
  });

  it('times out a call the daemon never answers', async () => {
    handlers.set('/containers/json', () => {
      /* never answer */
    });
    const c = client();
    const t0 = Date.now();
    await assert.rejects(
      c.listContainers({ all: true }, { timeoutMs: 300 }),
      (e) => e instanceof DockerError && /did not answer GET \/containers\/json within/.test(e.message),
    );
    assert.ok(Date.now() - t0 < 3000);
    c.close();
  });

  it('aborts a call in flight', async () => {
    handlers.set('/containers/json', () => {
      /* never answer */
    });
    const c = client();
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    await assert.rejects(
      c.listContainers({}, { signal: ac.signal }),
      (e) => e instanceof Error && e.name === 'AbortError',
    );
    c.close();
  });

  it('gives stop at least t + 30 s, sends t, and treats 304 as "already stopped"', async () => {
    handlers.set('/containers/slow/stop', (res) =>
      setTimeout(() => {
        res.statusCode = 204;
        res.end();
      }, 400),
    );
    handlers.set('/containers/done/stop', (res) => {
      res.statusCode = 304;
      res.end();
    });
    const c = client();
    // A caller's shorter timeout must not cut a stop short: the daemon is still stopping the container.
    assert.equal(await c.stopContainer('slow', 7, { timeoutMs: 100 }), true);
    assert.ok(seen.includes('POST /v1.41/containers/slow/stop?t=7'), seen.join('\n'));
    assert.equal(await c.stopContainer('done', 1), false);
    c.close();
  });

  it('carries the daemon’s message and status code', async () => {
    handlers.set('/containers/busy/start', (res) => {
      res.statusCode = 409;
      res.end(JSON.stringify({ message: 'container is marked for removal and cannot be started' }));
    });
    const c = client();
    await assert.rejects(
      c.startContainer('busy'),
      (e) => e instanceof DockerError && e.statusCode === 409 && /marked for removal/.test(e.message),
    );
    c.close();
  });

  it('explains a missing socket', async () => {
    const c = new DockerEngineClient({ host: `unix://${path.join(tmp, 'nope.sock')}` });
    await assert.rejects(
      c.ping(),
      (e) =>
        e instanceof DockerError &&
        /does not exist/.test(e.message) &&
        /start the Docker daemon/.test(e.hint ?? ''),
    );
  });
});
