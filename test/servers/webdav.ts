/**
 * A WebDAV server on 127.0.0.1:<free port> for one test: Debian's rclone (`rclone serve webdav` over
 * a temp directory; provisioned by scripts/servers.sh), with basic auth from an htpasswd file (a
 * `{SHA}` entry), so the credentials Kopia reads from KOPIA_WEBDAV_USERNAME/KOPIA_WEBDAV_PASSWORD
 * are really checked. The password never appears in the server's argv.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { findCommand, freePort, makeTempDir, startServer, type RunningServer } from './common.js';

export interface WebdavServer extends RunningServer {
  /** http://127.0.0.1:<port>/ — the served root. */
  url: string;
  username: string;
  password: string;
  /** The served directory on disk. */
  dataDir: string;
}

export function webdavUnavailable(): string | undefined {
  return findCommand('rclone') === undefined
    ? 'rclone missing (bash scripts/servers.sh installs it)'
    : undefined;
}

export async function startWebdavServer(): Promise<WebdavServer> {
  const rclone = findCommand('rclone');
  if (rclone === undefined) throw new Error('rclone not found');
  const dir = await makeTempDir('webdav');
  const dataDir = path.join(dir, 'data');
  await mkdir(dataDir, { mode: 0o700 });
  const username = `kd-${randomBytes(4).toString('hex')}`;
  const password = randomBytes(12).toString('hex');
  const htpasswd = path.join(dir, 'htpasswd');
  const sha = createHash('sha1').update(password).digest('base64');
  await writeFile(htpasswd, `${username}:{SHA}${sha}\n`, { mode: 0o600 });
  const port = await freePort();
  // An empty rclone config: the served path is local, nothing else must be read from ~/.config.
  const rcloneConf = path.join(dir, 'rclone.conf');
  await writeFile(rcloneConf, '', { mode: 0o600 });
  const srv = await startServer(
    'rclone serve webdav',
    [
      rclone,
      '--config',
      rcloneConf,
      'serve',
      'webdav',
      dataDir,
      '--addr',
      `127.0.0.1:${port}`,
      '--htpasswd',
      htpasswd,
      '--log-level',
      'ERROR',
    ],
    port,
    dir,
  );
  return { ...srv, url: `http://127.0.0.1:${port}/`, username, password, dataDir };
}
