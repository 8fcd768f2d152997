// Lease renewal for many nodes on one timer: each node renews at its own random phase of the period, so N nodes send
// N/period evenly spread requests instead of N timers firing in step.
export interface LeaseWheelOptions {
  /** How often each node renews; the kubelet's default is 10 s. */
  periodMs: number;
  /** Resolution of the wheel; default 100 ms. */
  tickMs?: number;
  /** Renewals in flight at most; a node whose turn comes while the wheel is full waits for its next turn. Default 512. */
  maxInFlight?: number;
  random?: () => number;
}

export interface LeaseWheelStats {
  members: number;
  renewals: number;
  /** Renewals that failed (the node tries again on its next turn). */
  failures: number;
  /** Turns given up because maxInFlight renewals were still running (the control plane is behind). */
  skipped: number;
  inFlight: number;
}

interface Member {
  renew(): Promise<void>;
}

export class LeaseWheel {
  private readonly slots: Array<Set<Member>>;
  private readonly tickMs: number;
  private readonly start = Date.now();
  /** The slot index (in ticks since start) processed last. */
  private done = -1;
  private timer: NodeJS.Timeout | undefined;
  private readonly inflight = new Set<Promise<void>>();
  private stopped = false;
  private readonly counts = { renewals: 0, failures: 0, skipped: 0, members: 0 };

  constructor(private readonly o: LeaseWheelOptions) {
    this.tickMs = o.tickMs ?? 100;
    this.slots = Array.from({ length: Math.max(1, Math.round(o.periodMs / this.tickMs)) }, () => new Set<Member>());
  }

  /** Renews `member` once per period from now on, at a random phase; returns what takes it off the wheel. */
  add(member: Member): () => void {
    const slot = this.slots[Math.floor((this.o.random ?? Math.random)() * this.slots.length)];
    slot.add(member);
    this.counts.members++;
    if (!this.timer && !this.stopped) {
      this.done = Math.floor((Date.now() - this.start) / this.tickMs);
      this.timer = setInterval(() => this.tick(), this.tickMs);
    }
    return () => {
      if (slot.delete(member)) this.counts.members--;
    };
  }

  private tick(): void {
    // Every slot passed since the last tick, so a busy event loop delays renewals but never drops a turn.
    const now = Math.floor((Date.now() - this.start) / this.tickMs);
    const limit = this.o.maxInFlight ?? 512;
    for (; this.done < now; ) {
      this.done++;
      for (const m of this.slots[this.done % this.slots.length]) {
        if (this.inflight.size >= limit) {
          this.counts.skipped++;
          continue;
        }
        const p = m.renew().then(
          () => void this.counts.renewals++,
          () => void this.counts.failures++,
        );
        this.inflight.add(p);
        void p.finally(() => this.inflight.delete(p));
      }
    }
  }

  stats(): LeaseWheelStats {
    return { ...this.counts, inFlight: this.inflight.size };
  }

  /** Stops the timer; renewals in flight finish first. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
    await Promise.allSettled([...this.inflight]);
  }
}
