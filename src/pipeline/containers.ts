/**
 * Stopping and starting a unit's containers. Stop returns what it stopped so the caller's `finally`
 * can always start exactly those again; start never gives up on the remaining containers because one
 * failed, so nothing that was running is left stopped by us.
 */
import type { Logger } from '../core/log.js';
import type { StartStep, StopStep } from '../core/plan.js';
import { KopiDockaError, errorMessage } from '../errors.js';
import type { StopRecord } from '../core/recipe-manifest.js';

export type { StopRecord };

/** The part of the Docker adapter this module needs (kept narrow so tests can see what is used). */
export interface ContainerControl {
  stopContainer(id: string, timeoutSec: number): Promise<unknown>;
  startContainer(id: string): Promise<unknown>;
  waitRunning(id: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<unknown>;
  waitHealthy(id: string, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<unknown>;
  /**
   * Only State is read: to wait for a one-shot container to exit, to see how a stopped container
   * ended (ExitCode 137 = SIGKILLed) and whether something started it again behind our back.
   */
  inspectContainer(id: string): Promise<{
    State: { Status: string; ExitCode?: number | undefined; Running?: boolean | undefined };
  }>;
}

/** Exit code of a process killed by SIGKILL (128 + 9): what Docker's stop does at the timeout. */
export const SIGKILL_EXIT_CODE = 137;

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
  /** One per container this call stopped (or tried to), in order. */
  records: StopRecord[];
  error: Error | undefined;
}

/**
 * The warning for a force-killed stop: says what happened and what it means for this restore point.
 */
export function forceKilledWarning(r: StopRecord): string {
  const whose = r.otherUnit === undefined ? '' : ` (unit ${r.otherUnit})`;
  return (
    `${r.container}${whose} did not exit within its stop timeout of ${r.timeoutSec}s and was killed ` +
    `(SIGKILL, exit code ${SIGKILL_EXIT_CODE}, after ${r.seconds}s): this restore point holds the data of an ` +
    "application that did not shut down cleanly — raise stop_timeout (or the container's stop_grace_period) " +
    'or make it handle its stop signal'
  );
}

/**
 * Stop in the given order; on the first failure stop no further (the caller restarts what stopped).
 * After each stop the container is inspected: exit code 137 means Docker had to SIGKILL it.
 */
export async function stopContainers(
  docker: ContainerControl,
  steps: StopStep[],
  log: Logger,
): Promise<StopOutcome> {
  const stopped: StopStep[] = [];
  const records: StopRecord[] = [];
  for (const s of steps) {
    const t0 = Date.now();
    const record = (): StopRecord => ({
      container: s.container,
      id: s.id,
      ...(s.otherUnit ? { otherUnit: s.otherUnit.unit } : {}),
      timeoutSec: s.timeoutSec,
      seconds: Math.round((Date.now() - t0) / 100) / 10,
      forceKilled: false,
    });
    try {
      const whose = s.otherUnit ? ` of unit ${s.otherUnit.unit}, which ${s.otherUnit.why}` : '';
      log.info(`stopping ${s.container}${whose} (timeout ${s.timeoutSec}s)`);
      const didStop = await docker.stopContainer(s.id, s.timeoutSec);
      stopped.push(s);
      const r = record();
      // false: it was not running any more (HTTP 304): its exit code is not about our stop.
      if (didStop !== false) {
        const st = await docker.inspectContainer(s.id).then(
          (c) => c.State,
          () => undefined,
        );
        r.exitCode = st?.ExitCode;
        r.forceKilled = st?.ExitCode === SIGKILL_EXIT_CODE;
        if (r.forceKilled) log.warn(forceKilledWarning(r));
      }
      records.push(r);
    } catch (err) {
      // The container may have stopped even though the call failed (e.g. a timeout on our side).
      stopped.push(s);
      records.push(record());
      return { stopped, records, error: new Error(`could not stop ${s.container}: ${errorMessage(err)}`) };
    }
  }
  return { stopped, records, error: undefined };
}

/**
 * The stopped containers that are running again although this run has not started them yet:
 * something else started them (a restart policy racing the stop, a supervisor, a person) while their
 * data was being snapshotted. Unreadable containers are left out.
 */
export async function runningAgain(docker: ContainerControl, stopped: StopStep[]): Promise<StopStep[]> {
  const out: StopStep[] = [];
  for (const s of stopped) {
    const st = await docker.inspectContainer(s.id).then(
      (c) => c.State,
      () => undefined,
    );
    if (st && (st.Running === true || st.Status === 'running' || st.Status === 'restarting')) out.push(s);
  }
  return out;
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
      // A crash-looping container was not steadily running before: started as found, not waited for.
      if (s.noWait) continue;
      if (s.waitCompleted) await waitCompleted(docker, s.id, timeoutMs);
      else if (s.waitHealthy) await docker.waitHealthy(s.id, { timeoutMs });
      else await docker.waitRunning(s.id, { timeoutMs });
    } catch (err) {
      problems.push(`${s.container}: ${errorMessage(err)}`);
    }
  }
  return problems;
}
