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

/** What an errno means, and what to do about it (Node's system errors: err.code, err.syscall, err.path). */
const ERRNO: Record<string, { means: string; hint: string }> = {
  ENOENT: { means: 'no such file or directory', hint: 'check the path (and that its parent exists)' },
  ENOTDIR: {
    means: 'a component of the path is a file, not a directory',
    hint: 'choose a path whose parents are all directories',
  },
  EEXIST: { means: 'it already exists', hint: 'choose another path, or remove what is there' },
  EACCES: {
    means: 'permission denied',
    hint: 'run as root (or a user that may write there), or choose another path',
  },
  EPERM: {
    means: 'operation not permitted',
    hint: 'run as root, or check the mount options and file attributes',
  },
  EROFS: {
    means: 'the filesystem is mounted read-only',
    hint: 'remount it read-write, or choose a path on a writable filesystem',
  },
  ENOSPC: {
    means: 'no space left on the device',
    hint: 'free space there (a Kopia repository reclaims partial data with `kopia maintenance run --full`)',
  },
  EDQUOT: { means: 'disk quota exceeded', hint: 'raise the quota or free space there' },
  EISDIR: { means: 'it is a directory', hint: 'name a file, not a directory' },
  ELOOP: {
    means: 'too many levels of symbolic links',
    hint: 'check the path for a symbolic link loop',
  },
  ENAMETOOLONG: { means: 'the file name is too long', hint: 'choose a shorter path' },
  ENOTEMPTY: { means: 'the directory is not empty', hint: 'empty it or choose another path' },
  EBUSY: { means: 'the resource is busy (mounted or in use)', hint: 'unmount it or stop what uses it' },
  EXDEV: { means: 'it is on another filesystem', hint: 'keep both paths on one filesystem' },
  EMFILE: { means: 'too many open files', hint: 'raise the open-files limit (ulimit -n)' },
  EIO: {
    means: 'an input/output error (the disk or share may be failing)',
    hint: 'check the device (dmesg)',
  },
};

/**
 * A filesystem or OS error the tool met (ENOENT, EACCES, EROFS, ENOSPC…): names the path, what was
 * being done and what to do. Never a stack trace: these are the user's environment, not bugs.
 */
export class SystemError extends KopiDockaError {
  readonly code: string;
  readonly path: string | undefined;
  constructor(err: NodeJS.ErrnoException, opts: { doing?: string; exitCode?: number; hint?: string } = {}) {
    const known = ERRNO[err.code ?? ''];
    const where = err.path ?? '';
    const doing = opts.doing ?? (err.syscall ? `${err.syscall}` : 'a filesystem operation');
    const means = known?.means ?? err.message;
    super(`${doing}${where ? ` ${where}` : ''} failed: ${means} (${err.code ?? 'error'})`, {
      exitCode: opts.exitCode ?? ExitCode.FAILURE,
      cause: err,
      ...((opts.hint ?? known?.hint) === undefined ? {} : { hint: opts.hint ?? known?.hint }),
    });
    this.code = err.code ?? '';
    this.path = err.path;
  }
}

/** Is this one of Node's system errors (it has an errno `code` such as ENOENT)? */
export function isSystemError(err: unknown): err is NodeJS.ErrnoException & { code: string } {
  return (
    err instanceof Error &&
    !(err instanceof KopiDockaError) &&
    typeof (err as NodeJS.ErrnoException).code === 'string' &&
    /^E[A-Z0-9]+$/.test((err as NodeJS.ErrnoException).code ?? '')
  );
}

/**
 * Run `fn`; a system error it throws becomes a SystemError saying what was being done (`doing`, e.g.
 * "creating the repository directory"). Other errors pass through unchanged.
 */
export async function doing<T>(
  what: string,
  fn: () => Promise<T>,
  opts: { exitCode?: number; hint?: string } = {},
): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (isSystemError(err)) throw new SystemError(err, { doing: what, ...opts });
    throw err;
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
