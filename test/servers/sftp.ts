/**
 * A private OpenSSH sshd (Debian's openssh-server, provisioned by scripts/servers.sh) serving SFTP on
 * 127.0.0.1:<free port> for one test: its own host key, a client key pair generated per server, an
 * authorized_keys file holding only that key, and a known_hosts file naming the server's key — so
 * Kopia connects non-interactively *with* host key checking. Key auth only (no passwords, no PAM);
 * every session is forced into internal-sftp. The user is the current one (root in CI); the
 * repository directory lives in the server's temp dir.
 */
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runChecked } from '../../src/adapters/process.js';
import { freePort, makeTempDir, startServer, type RunningServer } from './common.js';

export const SSHD = '/usr/sbin/sshd';

export interface SftpServer extends RunningServer {
  username: string;
  /** Private key file (ed25519, no passphrase, 0600). */
  keyFile: string;
  knownHostsFile: string;
  /** The `known_hosts` line for this server. */
  knownHostsLine: string;
  /** An absolute directory on the server for repositories (exists, empty). */
  dataDir: string;
}

/** Why the SFTP server cannot run here, or undefined when it can. */
export function sftpUnavailable(): string | undefined {
  if (!existsSync(SSHD)) return `${SSHD} missing (bash scripts/servers.sh installs openssh-server)`;
  if (process.getuid?.() !== 0) return 'the test sshd needs root';
  return undefined;
}

export async function startSftpServer(): Promise<SftpServer> {
  const dir = await makeTempDir('sftp');
  const hostKey = path.join(dir, 'ssh_host_ed25519_key');
  const keyFile = path.join(dir, 'client_ed25519');
  await runChecked(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'kd-test-host', '-f', hostKey]);
  await runChecked(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'kd-test-client', '-f', keyFile]);
  const authorized = path.join(dir, 'authorized_keys');
  await writeFile(authorized, await readFile(`${keyFile}.pub`), { mode: 0o600 });
  const dataDir = path.join(dir, 'data');
  await mkdir(dataDir, { mode: 0o700 });
  const port = await freePort();
  const config = path.join(dir, 'sshd_config');
  await writeFile(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      'PidFile none',
      `AuthorizedKeysFile ${authorized}`,
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'UsePAM no',
      // The key files live under /tmp (mode 1777), which StrictModes would reject.
      'StrictModes no',
      'Subsystem sftp internal-sftp',
      'ForceCommand internal-sftp',
      'AllowTcpForwarding no',
      'X11Forwarding no',
      'PermitTTY no',
      'LogLevel ERROR',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  // sshd insists on its privilege separation directory.
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  await chmod(keyFile, 0o600);
  const hostPub = (await readFile(`${hostKey}.pub`, 'utf8')).trim().split(/\s+/);
  const knownHostsLine = `[127.0.0.1]:${port} ${hostPub[0] ?? ''} ${hostPub[1] ?? ''}`;
  const knownHostsFile = path.join(dir, 'known_hosts');
  await writeFile(knownHostsFile, `${knownHostsLine}\n`, { mode: 0o600 });
  // -D: stay in the foreground (a child of the test), -e: log to stderr.
  const srv = await startServer('sshd', [SSHD, '-D', '-e', '-f', config], port, dir);
  return {
    ...srv,
    username: os.userInfo().username,
    keyFile,
    knownHostsFile,
    knownHostsLine,
    dataDir,
  };
}
