/** The machine the figures come from, read (never guessed) from the OS and the tools themselves. */
import os from 'node:os';
import { readFile } from 'node:fs/promises';
import { detectCompose } from './compose.js';
import { KOPIA_BIN } from './kopia.js';
import { exec } from './proc.js';

export interface Machine {
  cpuModel: string;
  cores: number;
  memTotalBytes: number;
  kernel: string;
  os: string;
  node: string;
  docker: string;
  dockerStorageDriver: string;
  dockerRootDir: string;
  /** The Compose the benchmark drove: its version and command, e.g. "2.40.3 (docker compose)". */
  dockerCompose: string;
  kopia: string;
  tar: string;
  /** Filesystem and size of the disk under the temp dir and under Docker's root. */
  disks: { path: string; source: string; fstype: string; size: string; avail: string; rotational: string }[];
}

async function out(argv: string[]): Promise<string> {
  const r = await exec(argv, { allowFail: true, timeoutMs: 30_000 }).catch(() => undefined);
  return r && r.code === 0 ? ((r.stdout.trim() || r.stderr.trim()).split('\n')[0] ?? '') : 'unknown';
}

async function osRelease(): Promise<string> {
  try {
    const s = await readFile('/etc/os-release', 'utf8');
    return /^PRETTY_NAME="?([^"\n]*)"?/m.exec(s)?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

async function disk(path: string): Promise<Machine['disks'][number]> {
  const line = await out(['findmnt', '-n', '-o', 'SOURCE,FSTYPE,SIZE,AVAIL', '-T', path]);
  const [source = '?', fstype = '?', size = '?', avail = '?'] = line.split(/\s+/);
  const dev = source.replace(/^\/dev\//, '').replace(/\[.*$/, '');
  const rota = await readFile(`/sys/block/${dev}/queue/rotational`, 'utf8').then(
    (s) => (s.trim() === '1' ? 'rotational' : 'non-rotational'),
    () => 'unknown',
  );
  return { path, source, fstype, size, avail, rotational: rota };
}

export async function describeMachine(tmpRoot: string): Promise<Machine> {
  const cpus = os.cpus();
  const dockerInfo = await out(['docker', 'info', '--format', '{{.Driver}} {{.DockerRootDir}}']);
  const [driver = 'unknown', rootDir = '/var/lib/docker'] = dockerInfo.split(' ');
  return {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memTotalBytes: os.totalmem(),
    kernel: `${os.type()} ${os.release()} ${os.machine()}`,
    os: await osRelease(),
    node: process.version,
    docker: await out(['docker', 'version', '--format', '{{.Server.Version}}']),
    dockerStorageDriver: driver,
    dockerRootDir: rootDir,
    dockerCompose: await detectCompose().then(
      (c) => `${c.version} (${c.command.join(' ')})`,
      () => 'unknown',
    ),
    kopia: await out([KOPIA_BIN, '--version']),
    tar: await out(['tar', '--version']),
    disks: [await disk(tmpRoot), await disk(rootDir)],
  };
}

export function machineMarkdown(m: Machine): string {
  return [
    `- CPU: ${m.cpuModel}, ${String(m.cores)} cores; RAM ${(m.memTotalBytes / 1024 ** 3).toFixed(1)} GiB`,
    `- OS: ${m.os}, kernel ${m.kernel}`,
    ...m.disks.map(
      (d) => `- disk under ${d.path}: ${d.source} (${d.fstype}, ${d.rotational}), ${d.size}, ${d.avail} free`,
    ),
    `- Docker ${m.docker} (storage driver ${m.dockerStorageDriver}), Compose ${m.dockerCompose}`,
    `- ${m.kopia.startsWith('v') ? `Kopia ${m.kopia}` : m.kopia}; ${m.tar}; Node ${m.node}`,
  ].join('\n');
}
