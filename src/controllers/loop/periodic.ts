// Runs one pass of a loop now and then every interval after the previous pass ended; passes never overlap.
import type { Logger } from '../../util/log.js';
import { Stopper } from './stopper.js';

export interface Periodic {
  /** Run a pass as soon as the current one (if any) ends, without waiting for the interval. */
  kick(): void;
  /** Stops the timer and waits for a pass in progress to end. */
  stop(): Promise<void>;
}

export function runPeriodically(name: string, intervalMs: number, pass: () => Promise<void>, log: Logger): Periodic {
  const stopper = new Stopper();
  let kicked = false;
  let wake: (() => void) | undefined;
  const loop = (async () => {
    while (!stopper.isStopped) {
      kicked = false;
      try {
        await pass();
      } catch (e) {
        // A failed pass (store unreachable, ...) is tried again at the next interval; the loop itself never dies.
        log.warn({ err: (e as Error).message }, `${name}: pass failed; trying again in ${intervalMs} ms`);
      }
      if (stopper.isStopped || kicked) continue;
      await Promise.race([stopper.sleep(intervalMs), new Promise<void>((r) => (wake = r))]);
      wake = undefined;
    }
  })();
  return {
    kick() {
      kicked = true;
      wake?.();
    },
    async stop() {
      stopper.stop();
      wake?.();
      await loop;
    },
  };
}
