// Physical compaction in small steps between other work, and the optional periodic automatic compaction.
import type { MvccStore } from './mvcc.js';

export class Compactor {
  private running = false;
  private stopped = false;
  private waiters: Array<{ rev: number; resolve(): void }> = [];

  constructor(
    private readonly store: MvccStore,
    private readonly chunkRows: number,
  ) {}

  /** Starts (or continues) removing history below the compact revision. */
  kick(): void {
    if (this.running || this.stopped) return;
    this.running = true;
    setImmediate(() => this.step());
  }

  /** Resolves once history up to `rev` is physically gone (CompactionRequest.physical). */
  waitFor(rev: number): Promise<void> {
    if (this.store.physicalCompactRev >= rev) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiters.push({ rev, resolve });
      this.kick();
    });
  }

  stop(): void {
    this.stopped = true;
    for (const w of this.waiters) w.resolve();
    this.waiters = [];
  }

  private step(): void {
    if (this.stopped) {
      this.running = false;
      return;
    }
    const done = this.store.compactStep(this.chunkRows);
    const reached = this.store.physicalCompactRev;
    this.waiters = this.waiters.filter((w) => {
      if (w.rev > reached) return true;
      w.resolve();
      return false;
    });
    if (done && this.store.physicalCompactRev >= this.store.compactRev) {
      this.running = false;
      return;
    }
    setImmediate(() => this.step());
  }
}
