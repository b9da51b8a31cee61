/**
 * Stopping and starting a unit's containers. Stop returns what it stopped so the caller's `finally`
 * can always start exactly those again; start never gives up on the remaining containers because one
 * failed, so nothing that was running is left stopped by us.
 */
import type { Logger } from '../cli/logger.js';
import type { StartStep, StopStep } from '../core/plan.js';
import { KopiDockaError, errorMessage } from '../errors.js';

/** The part of the Docker adapter this module needs (kept narrow so tests can see what is used). */
export interface ContainerControl {
  stopContainer(id: string, timeoutSec: number): Promise<unknown>;
  startContainer(id: string): Promise<unknown>;
  waitRunning(id: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<unknown>;
  waitHealthy(id: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<unknown>;
  /** Only State is read (to wait for a one-shot container to exit). */
  inspectContainer(id: string): Promise<{ State: { Status: string; ExitCode?: number | undefined } }>;
}

/** How often waitCompleted looks at a one-shot container. */
const COMPLETED_POLL_MS = 250;

/**
 * Waits until a started one-shot container has exited with code 0 (what Compose's
 * `service_completed_successfully` waits for).
 *
 * @param timeoutMs how long it may run, in milliseconds.
 * @throws KopiDockaError when it exits with another code, dies, or is still running at the deadline.
 */
export async function waitCompleted(docker: ContainerControl, id: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { State: st } = await docker.inspectContainer(id);
    if (st.Status === 'exited' || st.Status === 'dead') {
      if (st.Status === 'exited' && st.ExitCode === 0) return;
      throw new KopiDockaError(
        `one-shot container ${st.Status} with exit code ${String(st.ExitCode ?? '?')} (its dependants need exit code 0)`,
      );
    }
    if (Date.now() >= deadline) {
      throw new KopiDockaError(
        `one-shot container still ${st.Status} after ${Math.round(timeoutMs / 1000)}s; its dependants wait for it to complete`,
      );
    }
    await new Promise((r) => setTimeout(r, COMPLETED_POLL_MS));
  }
}

export interface StopOutcome {
  stopped: StopStep[];
  error: Error | undefined;
}

/** Stop in the given order; on the first failure stop no further (the caller restarts what stopped). */
export async function stopContainers(
  docker: ContainerControl,
  steps: StopStep[],
  log: Logger,
): Promise<StopOutcome> {
  const stopped: StopStep[] = [];
  for (const s of steps) {
    try {
      log.info(`stopping ${s.container} (timeout ${s.timeoutSec}s)`);
      await docker.stopContainer(s.id, s.timeoutSec);
      stopped.push(s);
    } catch (err) {
      // The container may have stopped even though the call failed (e.g. a timeout on our side).
      stopped.push(s);
      return { stopped, error: new Error(`could not stop ${s.container}: ${errorMessage(err)}`) };
    }
  }
  return { stopped, error: undefined };
}

/**
 * Start every container in order; after each, wait until it is healthy (healthcheck), has completed
 * (a one-shot: exit 0) or is running, before starting the next — dependants come after their
 * dependencies, so they start only once those are ready, as with Compose's depends_on conditions.
 * Returns the problems found (`<container>: <why>`); an empty list means the unit is back in service.
 */
export async function startContainers(
  docker: ContainerControl,
  steps: StartStep[],
  opts: { startTimeoutSec: number; log: Logger },
): Promise<string[]> {
  const problems: string[] = [];
  const deadline = Date.now() + opts.startTimeoutSec * 1000;
  for (const s of steps) {
    try {
      opts.log.info(`starting ${s.container}`);
      await docker.startContainer(s.id);
      // Dependents start after their dependencies are up, as Compose would do.
      const timeoutMs = Math.max(1000, deadline - Date.now());
      // A one-shot may well have exited by the first look: waiting for "running" would call that a failure.
      if (s.waitCompleted) await waitCompleted(docker, s.id, timeoutMs);
      else if (s.waitHealthy) await docker.waitHealthy(s.id, { timeoutMs });
      else await docker.waitRunning(s.id, { timeoutMs });
    } catch (err) {
      problems.push(`${s.container}: ${errorMessage(err)}`);
    }
  }
  return problems;
}
