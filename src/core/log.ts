/**
 * The logging interface the pipeline and adapters write to. Implemented by the CLI (stderr, journald
 * priorities) and by tests; defined here, below the pipeline, so no lower layer imports from `cli/`.
 */
import type { LogLevel } from '../config/types.js';

export interface Logger {
  level: LogLevel;
  /** Set by a live progress display so log lines are written around it, not through it. */
  around?: ((write: () => void) => void) | undefined;
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}
