// A promise-chained lock: one mutation of shared state at a time.
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  private pending = 0;

  run<T>(fn: () => Promise<T> | T): Promise<T> {
    this.pending++;
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    const done = () => void this.pending--;
    next.then(done, done);
    return next;
  }

  /** True while a call is running or waiting. */
  get busy(): boolean {
    return this.pending > 0;
  }
}
