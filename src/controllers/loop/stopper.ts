// A stop signal for a control loop: sleeps that end early when the loop stops, so stop() never waits out a backoff.

export class Stopper {
  private stopped = false;
  private readonly wakers = new Set<() => void>();

  get isStopped(): boolean {
    return this.stopped;
  }

  stop(): void {
    this.stopped = true;
    for (const wake of [...this.wakers]) wake();
    this.wakers.clear();
  }

  /** Resolves after `ms`, or at once when stopped; true if the full time passed. */
  sleep(ms: number): Promise<boolean> {
    if (this.stopped) return Promise.resolve(false);
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.wakers.delete(wake);
        resolve(false);
      };
      const timer = setTimeout(() => {
        this.wakers.delete(wake);
        resolve(true);
      }, ms);
      this.wakers.add(wake);
    });
  }
}

/** Exponential backoff: base·2^(attempt-1), at most max. `attempt` counts from 1. */
export function backoffMs(attempt: number, baseMs: number, maxMs: number): number {
  if (attempt <= 0) return 0;
  return Math.min(maxMs, baseMs * 2 ** Math.min(attempt - 1, 30));
}
