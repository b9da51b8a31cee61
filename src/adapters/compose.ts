/**
 * Which Docker Compose this host has: Compose v2 (the Go rewrite — the `docker compose` CLI plugin, or
 * its standalone binary installed as `docker-compose`), the end-of-life Python Compose v1
 * (`docker-compose` 1.x), or none.
 *
 * kopi-docka itself never runs Compose (it talks to the Engine API); it only tells people which command
 * brings a restored stack up, and `doctor` reports what is there. A flavour is decided by the version
 * the command prints, never by its name: `docker-compose` is often a v2 binary nowadays.
 */
import { errorMessage } from '../errors.js';
import { run, type RunOptions, type RunResult } from './process.js';

export type ComposeFlavour = 'v2' | 'v1' | 'none';

/** A Compose that answered `version --short` with a version we could read. */
export interface ComposeFound {
  flavour: 'v2' | 'v1';
  /** The version it printed, without a leading "v", e.g. "2.40.3" or "1.29.2". */
  version: string;
  /** The command that runs it, to which Compose arguments are appended: see COMPOSE_CANDIDATES. */
  argv: string[];
}

/** No usable Compose: `tried` says, per command, why not (for messages). */
export interface ComposeMissing {
  flavour: 'none';
  argv: [];
  /** One entry per command tried, in order, e.g. `docker compose: exited with code 1: …`. */
  tried: string[];
}

export type ComposeDetection = ComposeFound | ComposeMissing;

/**
 * The commands tried, in order of preference: the v2 CLI plugin first (what Docker documents today),
 * then `docker-compose` (v1, or a standalone v2).
 */
export const COMPOSE_CANDIDATES: readonly (readonly string[])[] = [['docker', 'compose'], ['docker-compose']];

/** Per command; `version` starts no daemon connection, so this only bounds a wedged binary. */
export const COMPOSE_PROBE_TIMEOUT_MS = 10_000;

/** The part of process.run's result the detection reads; a seam for unit tests. */
export type ComposeRunner = (
  argv: readonly string[],
  opts: RunOptions,
) => Promise<Pick<RunResult, 'code' | 'stdout' | 'stderrTail' | 'timedOut'>>;

/**
 * Reads the version out of `docker compose version --short` / `docker-compose version --short` output
 * — "2.40.3", "v2.40.3", "1.29.2", "2.20.2-desktop.1" — and, in case `--short` was ignored, out of the
 * long forms "Docker Compose version v2.40.3" and "docker-compose version 1.29.2, build 5becea4c".
 *
 * @returns the version without a leading "v" and its major number; undefined when the text holds no
 *   `MAJOR.MINOR` version (e.g. "dev" from a build without version stamp, or empty output).
 */
export function parseComposeVersion(text: string): { version: string; major: number } | undefined {
  const first = text.split('\n').find((l) => l.trim() !== '') ?? '';
  // The version is a word of its own: "v2.40.3", "1.29.2," — not the "1" of "build 1a2b3c".
  const m = /(?:^|[\s(])v?((\d+)\.\d+(?:\.\d+)?(?:[-+][0-9A-Za-z.+-]*)?)(?=$|[\s,)])/.exec(first.trim());
  if (!m?.[1] || !m[2]) return undefined;
  return { version: m[1], major: Number.parseInt(m[2], 10) };
}

/**
 * The flavour a Compose major version belongs to: 1 is the Python Compose v1; 2 and later are the Go
 * Compose v2 line (its releases went on to 5.x under the same plugin and the same CLI).
 *
 * @returns undefined for major 0 (no Compose release ever had it).
 */
export function composeFlavourOf(major: number): 'v2' | 'v1' | undefined {
  if (major === 1) return 'v1';
  return major >= 2 ? 'v2' : undefined;
}

/**
 * Picks among the Composes that answered (in COMPOSE_CANDIDATES order): the first v2, else the first v1.
 *
 * @param tried why each candidate that did not answer was rejected, kept for the 'none' result.
 */
export function chooseCompose(found: readonly ComposeFound[], tried: readonly string[]): ComposeDetection {
  const pick = found.find((f) => f.flavour === 'v2') ?? found.find((f) => f.flavour === 'v1');
  return pick ? { ...pick, argv: [...pick.argv] } : { flavour: 'none', argv: [], tried: [...tried] };
}

/** One candidate: a ComposeFound, or why it is not usable (a phrase for messages). */
async function probe(argv: readonly string[], runner: ComposeRunner): Promise<ComposeFound | string> {
  const name = argv.join(' ');
  let res: Awaited<ReturnType<ComposeRunner>>;
  try {
    res = await runner([...argv, 'version', '--short'], { timeoutMs: COMPOSE_PROBE_TIMEOUT_MS });
  } catch (err) {
    // spawn's ENOENT: the command is not installed at all.
    const missing = err instanceof Error && 'code' in err && err.code === 'ENOENT';
    return `${name}: ${missing ? 'not found' : errorMessage(err)}`;
  }
  if (res.timedOut) return `${name}: no answer within ${COMPOSE_PROBE_TIMEOUT_MS / 1000} s`;
  if (res.code !== 0) {
    // The docker CLI says "unknown command" or prints its usage when the plugin is missing.
    const why = res.stderrTail.trim().split('\n')[0] ?? '';
    return `${name}: exited with code ${String(res.code)}${why ? ` (${why})` : ''}`;
  }
  const parsed = parseComposeVersion(res.stdout);
  const flavour = parsed ? composeFlavourOf(parsed.major) : undefined;
  if (!parsed || !flavour) return `${name}: unreadable version "${res.stdout.trim().slice(0, 60)}"`;
  return { flavour, version: parsed.version, argv: [...argv] };
}

/**
 * Detects the Compose flavour of this host: runs `<candidate> version --short` for each of
 * COMPOSE_CANDIDATES (at most COMPOSE_PROBE_TIMEOUT_MS each) and classifies by the printed version.
 * `docker-compose` is asked only when `docker compose` is not a v2 (the preferred answer).
 *
 * Never throws: a missing, failing or unreadable command is a reason in the 'none' result.
 *
 * @param runner how to run a command (default: process.run); unit tests pass a fake.
 */
export async function detectCompose(runner: ComposeRunner = run): Promise<ComposeDetection> {
  const found: ComposeFound[] = [];
  const tried: string[] = [];
  for (const argv of COMPOSE_CANDIDATES) {
    const r = await probe(argv, runner);
    if (typeof r === 'string') tried.push(r);
    else {
      found.push(r);
      if (r.flavour === 'v2') break;
    }
  }
  return chooseCompose(found, tried);
}
