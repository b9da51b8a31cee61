/**
 * Peak resident memory of one process (not its children): VmHWM from /proc/<pid>/status, polled every
 * 100 ms. VmHWM is the kernel's own high-water mark, so a peak between two polls is not missed; the
 * last poll before the process exits carries the final value.
 */
import { readFile } from 'node:fs/promises';

async function readHwm(pid: number): Promise<number | undefined> {
  try {
    const s = await readFile(`/proc/${String(pid)}/status`, 'utf8');
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(s);
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined; // exited
  }
}

export interface PeakPoller {
  /** Stop polling; resolves with the peak (bytes) and how many polls read the file. */
  stop: () => Promise<{ hwm: number; polls: number }>;
}

export function pollPeak(pid: number, everyMs = 100): PeakPoller {
  let hwm = 0;
  let polls = 0;
  let chain: Promise<void> = Promise.resolve();
  const poll = () => {
    chain = chain.then(async () => {
      const v = await readHwm(pid);
      if (v !== undefined) {
        polls++;
        hwm = Math.max(hwm, v);
      }
    });
  };
  poll();
  const timer = setInterval(poll, everyMs);
  return {
    stop: async () => {
      clearInterval(timer);
      await chain;
      return { hwm, polls };
    },
  };
}
