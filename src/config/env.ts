/**
 * The only module that reads process.env (besides the config loader, which imports from here).
 * Everything else receives these values as arguments.
 */

export function envValue(name: string): string | undefined {
  const v = process.env[name];
  return v === undefined || v === '' ? undefined : v;
}

/** Colours only on a TTY, and never when NO_COLOR is set (https://no-color.org). */
export function colorEnabled(stream: NodeJS.WriteStream): boolean {
  return Boolean(stream.isTTY) && process.env.NO_COLOR === undefined && process.env.TERM !== 'dumb';
}

export function homeDir(): string | undefined {
  return envValue('HOME');
}

/** The environment children inherit (the process runner merges a call's own variables over it). */
export function inheritedEnvironment(): NodeJS.ProcessEnv {
  return process.env;
}

/** PATH, for resolving a command the way a child's exec would. */
export function searchPath(): string | undefined {
  return envValue('PATH');
}
