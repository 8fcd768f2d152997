// At most N tasks at once across many hollow nodes of one process: what keeps a fleet that learns of a rotation together
// from sending the control plane all its certificate requests together.
export class InFlightLimit {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`an in-flight limit must be a positive whole number, not ${max}`);
  }

  /** Runs `task` once fewer than `max` others run; tasks start in the order they were given. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.max) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      // The slot passes straight to the next task, so `running` never dips below the work waiting for it.
      if (next) next();
      else this.running--;
    }
  }

  get inFlight(): number {
    return this.running;
  }

  get queued(): number {
    return this.waiting.length;
  }
}
