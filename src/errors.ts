/**
 * Typed errors. Every error that reaches the user carries an exit code and a hint saying what to do;
 * only src/main.ts turns them into a process exit.
 */

export const ExitCode = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  CONFIG: 3,
  DEPENDENCY: 4,
  REPOSITORY: 5,
  DOCKER: 6,
  LOCKED: 75,
  SIGINT: 130,
  SIGTERM: 143,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export class KopiDockaError extends Error {
  readonly exitCode: number;
  readonly hint: string | undefined;
  constructor(message: string, opts: { exitCode?: number; hint?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.exitCode = opts.exitCode ?? ExitCode.FAILURE;
    this.hint = opts.hint;
  }
}

export class UsageError extends KopiDockaError {
  constructor(message: string, hint?: string) {
    super(message, { exitCode: ExitCode.USAGE, ...(hint === undefined ? {} : { hint }) });
  }
}

/** A configuration problem: names the file, line and key when known. */
export class ConfigError extends KopiDockaError {
  constructor(message: string, hint?: string) {
    super(message, { exitCode: ExitCode.CONFIG, ...(hint === undefined ? {} : { hint }) });
  }
}

export class DependencyError extends KopiDockaError {
  constructor(message: string, hint?: string) {
    super(message, { exitCode: ExitCode.DEPENDENCY, ...(hint === undefined ? {} : { hint }) });
  }
}

export class DockerError extends KopiDockaError {
  readonly statusCode: number | undefined;
  constructor(message: string, opts: { statusCode?: number; hint?: string; cause?: unknown } = {}) {
    super(message, { exitCode: ExitCode.DOCKER, ...opts });
    this.statusCode = opts.statusCode;
  }
}

/** A failed child process: carries its exit code or signal and the tail of its stderr. */
export class ProcessError extends KopiDockaError {
  readonly command: string;
  readonly code: number | null;
  readonly signal: string | null;
  readonly stderrTail: string;
  readonly timedOut: boolean;
  constructor(
    command: string,
    res: { code: number | null; signal: string | null; stderrTail: string; timedOut?: boolean },
    opts: { exitCode?: number; hint?: string; message?: string } = {},
  ) {
    const what = res.timedOut
      ? 'timed out'
      : res.signal
        ? `was killed by ${res.signal}`
        : `exited with code ${String(res.code)}`;
    const tail = res.stderrTail.trim();
    super(opts.message ?? `${command} ${what}${tail ? `: ${tail}` : ''}`, {
      exitCode: opts.exitCode ?? ExitCode.FAILURE,
      ...(opts.hint === undefined ? {} : { hint: opts.hint }),
    });
    this.command = command;
    this.code = res.code;
    this.signal = res.signal;
    this.stderrTail = res.stderrTail;
    this.timedOut = res.timedOut ?? false;
  }
}

export class RepositoryError extends KopiDockaError {
  constructor(message: string, opts: { hint?: string; cause?: unknown } = {}) {
    super(message, { exitCode: ExitCode.REPOSITORY, ...opts });
  }
}

export class LockBusyError extends KopiDockaError {
  constructor(message: string, hint?: string) {
    super(message, { exitCode: ExitCode.LOCKED, ...(hint === undefined ? {} : { hint }) });
  }
}

/** Raised when SIGINT/SIGTERM/SIGHUP aborted the work; exit 128 + signal number. */
export class InterruptedError extends KopiDockaError {
  readonly signal: NodeJS.Signals;
  constructor(signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`, {
      exitCode: signal === 'SIGINT' ? ExitCode.SIGINT : signal === 'SIGHUP' ? 129 : ExitCode.SIGTERM,
    });
    this.signal = signal;
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
