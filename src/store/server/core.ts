// The store without its transport: SQLite history, leases, group commit, watchers and the timers that drive them.
import type { Clock } from '../../util/clock.js';
import { Applier } from './applier.js';
import { Compactor } from './compactor.js';
import type { Identity } from './identity.js';
import { Lessor } from './lessor.js';
import { MvccStore, type Synchronous } from './mvcc.js';
import type { ResponseHeader } from './types.js';
import { WatchHub } from './watch-hub.js';
import { WriteQueue } from './write-queue.js';

export interface Tuning {
  /** How often lease expiry is checked against the clock. */
  leaseCheckMs: number;
  /** Interval of progress notifications to watchers that asked for them (etcd: 10 minutes). */
  progressNotifyMs: number;
  /** History rows handled per physical compaction step. */
  compactChunkRows: number;
  /**
   * Look at each connection's first request and send those with a URL :authority through the rewriter
   * (connection-intake.ts); off gives grpc-js every TLS socket as it is.
   */
  rewriteAuthority: boolean;
}

export const DEFAULT_TUNING: Tuning = { leaseCheckMs: 100, progressNotifyMs: 10 * 60 * 1000, compactChunkRows: 2000, rewriteAuthority: true };

export interface CoreOptions {
  dbPath: string;
  synchronous: Synchronous;
  clock: Clock;
  compaction?: { intervalMs: number; retainRevisions: number };
  identity: Identity;
  tuning: Tuning;
}

export class StoreCore {
  readonly store: MvccStore;
  readonly lessor: Lessor;
  readonly applier: Applier;
  readonly writes: WriteQueue;
  readonly hub: WatchHub;
  readonly compactor: Compactor;
  readonly identity: Identity;
  private readonly timers: NodeJS.Timeout[] = [];

  constructor(private readonly o: CoreOptions) {
    this.identity = o.identity;
    this.store = new MvccStore(o.dbPath, o.synchronous);
    this.lessor = new Lessor(this.store, o.clock);
    this.applier = new Applier(this.store, this.lessor);
    this.hub = new WatchHub(this.store, (rev) => this.header(rev));
    this.writes = new WriteQueue(this.store, this.lessor, this.applier, (events) => {
      try {
        this.hub.notify(events);
      } catch {
        this.hub.desyncAll();
      }
    });
    this.compactor = new Compactor(this.store, o.tuning.compactChunkRows);
  }

  header(rev = this.store.rev): ResponseHeader {
    return { cluster_id: this.identity.clusterId, member_id: this.identity.memberId, revision: rev, raft_term: this.store.raftTerm };
  }

  start(): void {
    // A compaction interrupted by a stop resumes.
    this.compactor.kick();
    this.every(this.o.tuning.leaseCheckMs, () => this.revokeExpired());
    this.every(this.o.tuning.progressNotifyMs, () => this.hub.progressTick());
    const auto = this.o.compaction;
    if (auto && auto.retainRevisions > 0) this.every(auto.intervalMs, () => this.autoCompact(auto.retainRevisions));
  }

  private every(ms: number, fn: () => void): void {
    const t = setInterval(fn, ms);
    t.unref();
    this.timers.push(t);
  }

  /** Expired leases are revoked through the write queue, so their key deletions are durable and watched like any write. */
  private revokeExpired(): void {
    for (const lease of this.lessor.takeExpired()) {
      this.writes.submit({ kind: 'leaseRevoke', id: lease.id }).then(
        () => undefined,
        () => {
          lease.revoking = false;
        },
      );
    }
  }

  private autoCompact(retain: number): void {
    const target = this.store.rev - retain;
    if (target <= this.store.compactRev || target < 1) return;
    this.writes.submit({ kind: 'compact', revision: target }).then(
      () => this.compactor.kick(),
      () => undefined,
    );
  }

  close(): void {
    for (const t of this.timers) clearInterval(t);
    this.writes.close();
    this.hub.close();
    this.compactor.stop();
    this.store.close();
  }
}
