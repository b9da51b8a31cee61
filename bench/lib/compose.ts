/**
 * The Docker Compose the benchmark drives, as in the test suite (test/integration/helpers.ts):
 * KD_TEST_COMPOSE=`v2` (`docker compose`) or `v1` (`docker-compose`); unset or empty: v2 when
 * `docker compose version` runs, else v1. It talks to the daemon DOCKER_HOST names, like docker itself.
 *
 * Compose v1 names containers `<project>_<service>_1`, v2 `<project>-<service>-1`: the benchmark never
 * builds container names, it finds containers by their Compose labels. Volumes are `<project>_<name>`
 * in both.
 */
import { exec, type ExecOptions, type ExecResult } from './proc.js';

export type ComposeFlavour = 'v1' | 'v2';

export interface Compose {
  flavour: ComposeFlavour;
  /** The command Compose arguments are appended to. */
  command: readonly string[];
  /** What `version --short` printed, e.g. "2.40.3" or "1.29.2". */
  version: string;
}

const COMMANDS: Record<ComposeFlavour, readonly string[]> = {
  v2: ['docker', 'compose'],
  v1: ['docker-compose'],
};

async function versionOf(command: readonly string[]): Promise<string | undefined> {
  const r = await exec([...command, 'version', '--short'], { allowFail: true, timeoutMs: 30_000 }).catch(
    () => undefined,
  );
  return r?.code === 0 ? r.stdout.trim().split('\n')[0] : undefined;
}

let chosen: Compose | undefined;

/** Picks (once) and checks the Compose to drive; throws when it does not run. */
export async function detectCompose(): Promise<Compose> {
  if (chosen) return chosen;
  const wanted = process.env.KD_TEST_COMPOSE?.trim() ?? '';
  if (wanted !== '' && wanted !== 'v1' && wanted !== 'v2') {
    throw new Error(`KD_TEST_COMPOSE must be v1 or v2, not "${wanted}"`);
  }
  const order: ComposeFlavour[] = wanted === '' ? ['v2', 'v1'] : [wanted];
  for (const flavour of order) {
    const version = await versionOf(COMMANDS[flavour]);
    if (version !== undefined) {
      chosen = { flavour, command: COMMANDS[flavour], version };
      return chosen;
    }
  }
  throw new Error(
    `no Docker Compose found (tried ${order.map((f) => COMMANDS[f].join(' ')).join(', ')}): run \`bash scripts/provision.sh\``,
  );
}

/** `<compose> -p <project> ...args` with the Compose detectCompose() picks. */
export async function compose(
  project: string,
  args: readonly string[],
  opts: ExecOptions = {},
): Promise<ExecResult> {
  const c = await detectCompose();
  return exec([...c.command, '-p', project, ...args], opts);
}
