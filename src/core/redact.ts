/**
 * Secret redaction for the `docker inspect` documents stored in recipes. Environment values, labels
 * and `--password=…`-style arguments whose names look secret are replaced, so a recipe never carries
 * credentials into the repository (restore lists what must be filled in by hand).
 */

export const REDACTED = '***REDACTED***';

/** Names that look like they hold a secret. Matched case-insensitively anywhere in the name. */
const SECRET_NAME = /PASS|SECRET|KEY|TOKEN|API|AUTH|CREDENTIAL|PRIVATE/i;

export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name);
}

/** `NAME=value` → `NAME=***REDACTED***` when NAME looks secret. */
export function redactEnvEntry(entry: string): string {
  const eq = entry.indexOf('=');
  if (eq <= 0) return entry;
  const name = entry.slice(0, eq);
  return isSecretName(name) ? `${name}=${REDACTED}` : entry;
}

/**
 * Command-line arguments: `--password=x`, `--api-key=x` are redacted in place; `--password x` redacts
 * the following argument.
 */
export function redactArgs(args: readonly string[]): string[] {
  const out: string[] = [];
  let redactNext = false;
  for (const a of args) {
    if (redactNext) {
      out.push(REDACTED);
      redactNext = false;
      continue;
    }
    const m = /^(--?[A-Za-z0-9_.-]+)(=)(.*)$/s.exec(a);
    if (m?.[1] !== undefined && isSecretName(m[1])) {
      out.push(`${m[1]}=${REDACTED}`);
      continue;
    }
    if (/^--?[A-Za-z0-9_.-]+$/.test(a) && isSecretName(a)) redactNext = true;
    out.push(a);
  }
  return out;
}

export function redactLabels(labels: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) out[k] = isSecretName(k) ? REDACTED : v;
  return out;
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function stringArray(v: unknown): string[] | undefined {
  return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : undefined;
}

/** A deep copy of a `docker inspect` container document with secrets redacted. */
export function redactInspect(inspect: Json): Json {
  const doc = structuredClone(inspect);
  const cfg = doc.Config;
  if (isObject(cfg)) {
    const env = stringArray(cfg.Env);
    if (env) cfg.Env = env.map(redactEnvEntry);
    if (isObject(cfg.Labels)) cfg.Labels = redactLabels(cfg.Labels as Record<string, string>);
    for (const key of ['Cmd', 'Entrypoint'] as const) {
      const v = stringArray(cfg[key]);
      if (v) cfg[key] = redactArgs(v);
    }
  }
  const args = stringArray(doc.Args);
  if (args) doc.Args = redactArgs(args);
  return doc;
}

/** Names of environment variables that were redacted (restore tells the user to fill them in). */
export function redactedEnvNames(inspect: Json): string[] {
  const cfg = inspect.Config;
  if (!isObject(cfg)) return [];
  const env = stringArray(cfg.Env) ?? [];
  return env.filter((e) => e.endsWith(`=${REDACTED}`)).map((e) => e.slice(0, e.indexOf('=')));
}
