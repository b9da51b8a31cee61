/**
 * SIGINT/SIGTERM/SIGHUP during work: abort the running children (Kopia, tar) through the signal, let the
 * pipeline's `finally` start the containers again, then exit 130/143. A second signal is logged and
 * ignored so the restart is not cut short.
 */
import type { Logger } from './logger.js';

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export async function withSignals<T>(log: Logger, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (ac.signal.aborted) {
      log.warn(`${sig} received again: still restarting containers, please wait`);
      return;
    }
    log.warn(`${sig} received: stopping the running Kopia/tar and starting what this run stopped again`);
    ac.abort(sig);
  };
  for (const s of SIGNALS) process.on(s, onSignal);
  try {
    return await fn(ac.signal);
  } finally {
    for (const s of SIGNALS) process.off(s, onSignal);
  }
}
