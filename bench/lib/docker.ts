/**
 * Docker through its CLI (the benchmark is an outside observer: it does not use kopi-docka's adapter),
 * and the unit's downtime as Docker itself recorded it.
 */
import { exec, type ExecResult } from './proc.js';

export function docker(
  args: string[],
  opts: { allowFail?: boolean; timeoutMs?: number; cleanup?: boolean } = {},
): Promise<ExecResult> {
  return exec(['docker', ...args], opts);
}

export async function volumeMountpoint(name: string): Promise<string> {
  const r = await docker(['volume', 'inspect', '--format', '{{.Mountpoint}}', name]);
  const p = r.stdout.trim();
  if (!p.startsWith('/')) throw new Error(`volume ${name}: unexpected mountpoint "${p}"`);
  return p;
}

export async function containerId(name: string): Promise<string> {
  return (await docker(['inspect', '--format', '{{.Id}}', name])).stdout.trim();
}

/** Wall-clock seconds as Docker's --since/--until take them (fractional Unix time). */
export function unixSeconds(ms = Date.now()): string {
  return (ms / 1000).toFixed(3);
}

export interface Downtime {
  /** From the first container going down (die/stop) to the last one started again, ms. */
  ms: number;
  perContainer: Record<string, number>;
}

/** ns → ms without losing precision: timeNano (~1.7e18) does not fit a double exactly. */
function nanoToMs(ns: bigint, origin: bigint): number {
  return Number(ns - origin) / 1e6;
}

/**
 * Downtime from `docker events` between two wall-clock instants. For every container: the first
 * die/stop event, and the first start after it. Throws when a container has no down/up pair (then
 * the measured command did not stop it, which the benchmark treats as an error).
 */
export async function downtimeFromEvents(ids: string[], sinceMs: number, untilMs: number): Promise<Downtime> {
  const args = [
    'events',
    '--since',
    unixSeconds(sinceMs),
    '--until',
    unixSeconds(untilMs),
    '--format',
    '{{json .}}',
  ];
  for (const id of ids) args.push('--filter', `container=${id}`);
  args.push('--filter', 'type=container');
  const r = await docker(args, { timeoutMs: 60_000 });
  const events: { id: string; action: string; ns: bigint }[] = [];
  for (const line of r.stdout.split('\n')) {
    if (!line.trim()) continue;
    const ev = JSON.parse(line) as { id?: string; Action?: string; status?: string };
    const ns = /"timeNano":(\d+)/.exec(line)?.[1];
    if (!ev.id || ns === undefined) continue;
    events.push({ id: ev.id, action: ev.Action ?? ev.status ?? '', ns: BigInt(ns) });
  }
  events.sort((a, b) => (a.ns < b.ns ? -1 : a.ns > b.ns ? 1 : 0));
  let first: bigint | undefined;
  let last: bigint | undefined;
  const perContainer: Record<string, number> = {};
  for (const id of ids) {
    const mine = events.filter((e) => e.id === id);
    const down = mine.find((e) => e.action === 'die' || e.action === 'stop');
    const up = down ? mine.find((e) => e.action === 'start' && e.ns > down.ns) : undefined;
    if (!down || !up) {
      throw new Error(
        `docker events: container ${id.slice(0, 12)} has no ${down ? 'start after its stop' : 'die/stop'} event between ${unixSeconds(sinceMs)} and ${unixSeconds(untilMs)} (saw: ${mine.map((e) => e.action).join(', ') || 'nothing'})`,
      );
    }
    perContainer[id.slice(0, 12)] = nanoToMs(up.ns, down.ns);
    if (first === undefined || down.ns < first) first = down.ns;
    if (last === undefined || up.ns > last) last = up.ns;
  }
  if (first === undefined || last === undefined) throw new Error('downtimeFromEvents: no containers');
  return { ms: nanoToMs(last, first), perContainer };
}

/**
 * The same window from the containers' state (FinishedAt of the last stop, StartedAt of the last
 * start): a cross-check of the events, kept in the JSON. RFC3339 with nanoseconds, parsed to µs.
 */
export async function downtimeFromState(ids: string[]): Promise<number> {
  const r = await docker(['inspect', '--format', '{{.State.FinishedAt}} {{.State.StartedAt}}', ...ids]);
  const toUs = (s: string): number => {
    const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(s);
    if (!m) throw new Error(`cannot parse docker time "${s}"`);
    const frac = (m[2] ?? '').padEnd(6, '0').slice(0, 6);
    return Date.parse(`${m[1] ?? ''}Z`) * 1000 + Number(frac);
  };
  let first = Infinity;
  let last = -Infinity;
  for (const line of r.stdout.trim().split('\n')) {
    const [fin, start] = line.split(' ');
    if (!fin || !start) continue;
    first = Math.min(first, toUs(fin));
    last = Math.max(last, toUs(start));
  }
  return (last - first) / 1000;
}

/** Let the last events land, then return the --until instant (wall clock, ms). */
export async function settleEvents(): Promise<number> {
  await new Promise((r) => setTimeout(r, 150));
  return Date.now();
}

/** Remove every container, volume and network labelled with this Compose project. Never throws. */
export async function removeProjectResources(project: string): Promise<void> {
  const label = `label=com.docker.compose.project=${project}`;
  const list = async (args: string[]): Promise<string[]> =>
    (await docker(args, { allowFail: true, cleanup: true })).stdout.split('\n').filter(Boolean);
  const containers = await list(['ps', '-aq', '--filter', label]);
  if (containers.length) await docker(['rm', '-f', '-v', ...containers], { allowFail: true, cleanup: true });
  const volumes = await list(['volume', 'ls', '-q', '--filter', label]);
  if (volumes.length) await docker(['volume', 'rm', '-f', ...volumes], { allowFail: true, cleanup: true });
  const networks = await list(['network', 'ls', '-q', '--filter', label]);
  if (networks.length) await docker(['network', 'rm', ...networks], { allowFail: true, cleanup: true });
}
