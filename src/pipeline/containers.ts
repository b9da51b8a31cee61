/**
 * Stopping and starting a unit's containers. Stop returns what it stopped so the caller's `finally`
 * can always start exactly those again; start never gives up on the remaining containers because one
 * failed, so nothing that was running is left stopped by us.
 */
import type { Logger } from '../cli/logger.js';
import type { StartStep, StopStep } from '../core/plan.js';
import { errorMessage } from '../errors.js';

/** The part of the Docker adapter this module needs (kept narrow so tests can see what is used). */
export interface ContainerControl {
  stopContainer(id: string, timeoutSec: number): Promise<unknown>;
  startContainer(id: string): Promise<unknown>;
  waitRunning(id: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<unknown>;
  waitHealthy(id: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<unknown>;
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
 * Start every container in order, then wait until each is healthy (healthcheck) or running.
 * Returns the problems found; an empty list means the unit is back in service.
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
      if (s.waitHealthy) await docker.waitHealthy(s.id, { timeoutMs });
      else await docker.waitRunning(s.id, { timeoutMs });
    } catch (err) {
      problems.push(`${s.container}: ${errorMessage(err)}`);
    }
  }
  return problems;
}
