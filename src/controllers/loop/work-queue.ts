// A keyed work queue as client-go's: a key is queued once however often it is added, never handled twice at the same
// time, handled again if added while in progress, and retried with per-key exponential backoff.
import type { Logger } from '../../util/log.js';
import { backoffMs } from './stopper.js';

/** 'done' forgets the key's failures; 'retry' (or a throw) queues it again after its next backoff. */
export type WorkResult = 'done' | 'retry';

export interface WorkQueueOptions {
  name: string;
  /** Keys handled at the same time (distinct keys only). */
  concurrency: number;
  retryBaseMs: number;
  retryMaxMs: number;
  log: Logger;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly active = new Set<string>();
  /** Added again while being handled: goes back on the queue when the current run ends. */
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly running = new Set<Promise<void>>();
  private stopped = false;

  constructor(
    private readonly handler: (key: string) => Promise<WorkResult>,
    private readonly o: WorkQueueOptions,
  ) {}

  add(key: string): void {
    if (this.stopped) return;
    const t = this.timers.get(key);
    if (t) {
      // Something changed: try now rather than at the end of the backoff.
      clearTimeout(t);
      this.timers.delete(key);
    }
    if (this.active.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
    this.pump();
  }

  /** Keys waiting or in progress (for tests and logs). */
  get depth(): number {
    return this.queue.length + this.active.size + this.timers.size;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.queue.length = 0;
    this.queued.clear();
    await Promise.all([...this.running]);
  }

  private pump(): void {
    while (!this.stopped && this.active.size < this.o.concurrency && this.queue.length > 0) {
      const key = this.queue.shift()!;
      this.queued.delete(key);
      this.active.add(key);
      const run = this.run(key).finally(() => {
        this.running.delete(run);
        this.active.delete(key);
        if (this.dirty.delete(key)) this.add(key);
        this.pump();
      });
      this.running.add(run);
    }
  }

  private async run(key: string): Promise<void> {
    let result: WorkResult;
    try {
      result = await this.handler(key);
    } catch (e) {
      this.o.log.warn({ key, err: (e as Error).message }, `${this.o.name}: handling failed`);
      result = 'retry';
    }
    if (result === 'done') {
      this.failures.delete(key);
      return;
    }
    if (this.stopped || this.dirty.has(key)) return;
    const n = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, n);
    const wait = backoffMs(n, this.o.retryBaseMs, this.o.retryMaxMs);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, wait);
    this.timers.set(key, timer);
  }
}
