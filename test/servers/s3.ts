/**
 * An S3-compatible server on 127.0.0.1:<free port> for one test: versitygw's POSIX gateway (a real S3
 * API server; built from its Go module by scripts/servers.sh and cached in
 * ~/.cache/kopi-docka/versitygw-<VERSITYGW_VERSION>/). Plain HTTP on loopback (`--disable-tls` on the
 * Kopia side). The root credentials are random per server and reach versitygw through its
 * environment (ROOT_ACCESS_KEY_ID / ROOT_SECRET_ACCESS_KEY), never argv. Buckets are directories
 * of the served root: `startS3Server({ buckets })` creates them before the gateway starts.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT, freePort, makeTempDir, startServer, type RunningServer } from './common.js';

export interface S3Server extends RunningServer {
  /** host:port, as Kopia's --endpoint takes it. */
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** The directory served (one subdirectory per bucket). */
  dataDir: string;
}

/** The cached versitygw binary for the version pinned in scripts/versions.env. */
export function versitygwPath(): string {
  const env = readFileSync(path.join(REPO_ROOT, 'scripts', 'versions.env'), 'utf8');
  const m = /^VERSITYGW_VERSION=(\S+)$/m.exec(env);
  if (!m?.[1]) throw new Error('VERSITYGW_VERSION missing in scripts/versions.env');
  const cache = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(cache, 'kopi-docka', `versitygw-${m[1]}`, 'versitygw');
}

export function s3Unavailable(): string | undefined {
  const p = versitygwPath();
  return existsSync(p) ? undefined : `${p} missing (bash scripts/servers.sh builds it)`;
}

export async function startS3Server(opts: { buckets: string[] }): Promise<S3Server> {
  const dir = await makeTempDir('s3');
  const dataDir = path.join(dir, 'data');
  await mkdir(dataDir, { mode: 0o700 });
  for (const b of opts.buckets) await mkdir(path.join(dataDir, b), { mode: 0o700 });
  const port = await freePort();
  const accessKeyId = `kd${randomBytes(8).toString('hex')}`;
  const secretAccessKey = randomBytes(20).toString('hex');
  const region = 'us-east-1';
  const srv = await startServer(
    'versitygw',
    [versitygwPath(), '--port', `127.0.0.1:${port}`, '--region', region, '--quiet', 'posix', dataDir],
    port,
    dir,
    { ROOT_ACCESS_KEY_ID: accessKeyId, ROOT_SECRET_ACCESS_KEY: secretAccessKey },
  );
  return {
    ...srv,
    endpoint: `127.0.0.1:${port}`,
    region,
    accessKeyId,
    secretAccessKey,
    dataDir,
  };
}
