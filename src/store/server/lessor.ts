// Leases: their TTLs and attached keys in memory, their existence on disk; expiry reads the injected clock.
import { randomBytes } from 'node:crypto';
import type { Clock } from '../../util/clock.js';
import type { MvccStore } from './mvcc.js';
import { NO_LEASE } from './types.js';

/** etcd's bounds: lease.MaxLeaseTTL, and the minimum a default member grants (1.5 × election timeout, rounded up to seconds). */
export const MAX_LEASE_TTL = 9_000_000_000;
export const MIN_LEASE_TTL = 2;

export interface Lease {
  id: string;
  /** Granted TTL in seconds. */
  ttl: number;
  /** Clock time (ms) at which the lease expires unless renewed. */
  expiresAt: number;
  /** Attached keys, by their latin1 spelling (one character per byte). */
  keys: Map<string, Buffer>;
  /** A revoke for expiry is queued. */
  revoking: boolean;
}

/**
 * After a restart every lease gets a full TTL from the moment the store opens, as etcd does when a member
 * becomes leader (lessor.Promote): the holder could not renew while the server was down, so it gets one TTL
 * to come back. Remaining TTLs are therefore not persisted and keep-alives cost no disk write.
 */
export class Lessor {
  private readonly leases = new Map<string, Lease>();

  constructor(
    private readonly store: MvccStore,
    private readonly clock: Clock,
  ) {
    this.reload();
  }

  private now(): number {
    return this.clock.now().getTime();
  }

  reload(): void {
    const previous = new Map(this.leases);
    this.leases.clear();
    for (const p of this.store.persistedLeases()) {
      // A lease that survived a failed commit keeps its timer; others start a full TTL now.
      const expiresAt = previous.get(p.id)?.expiresAt ?? this.now() + p.ttl * 1000;
      this.leases.set(p.id, { id: p.id, ttl: p.ttl, expiresAt, keys: new Map(), revoking: false });
    }
    for (const { key, lease } of this.store.leasedKeys()) this.leases.get(lease)?.keys.set(key.toString('latin1'), key);
  }

  get(id: string): Lease | undefined {
    return this.leases.get(id);
  }

  list(): string[] {
    return [...this.leases.keys()];
  }

  /** A fresh positive int63 ID, as etcd chooses when the request has none. */
  newId(): string {
    for (;;) {
      const id = (randomBytes(8).readBigUInt64BE() & ((1n << 63n) - 1n)).toString();
      if (id !== NO_LEASE && !this.leases.has(id)) return id;
    }
  }

  /** Inside a write batch: record a granted lease. The caller has checked that `id` is free. */
  grant(id: string, ttl: number): Lease {
    const lease: Lease = { id, ttl, expiresAt: this.now() + ttl * 1000, keys: new Map(), revoking: false };
    this.store.saveLease(id, ttl);
    this.leases.set(id, lease);
    return lease;
  }

  /** Inside a write batch, after the attached keys were deleted. */
  remove(id: string): void {
    this.store.dropLease(id);
    this.leases.delete(id);
  }

  attach(id: string, key: Buffer): void {
    if (id !== NO_LEASE) this.leases.get(id)?.keys.set(key.toString('latin1'), key);
  }

  detach(id: string, key: Buffer): void {
    if (id !== NO_LEASE) this.leases.get(id)?.keys.delete(key.toString('latin1'));
  }

  isExpired(l: Lease): boolean {
    return l.expiresAt <= this.now();
  }

  /** Keep-alive: the TTL granted again, or undefined when the lease is gone or already expired. */
  renew(id: string): number | undefined {
    const l = this.leases.get(id);
    if (!l || this.isExpired(l)) return undefined;
    l.expiresAt = this.now() + l.ttl * 1000;
    return l.ttl;
  }

  /** Seconds left, truncated toward zero as etcd's int64(Remaining().Seconds()). */
  remaining(l: Lease): number {
    return Math.trunc((l.expiresAt - this.now()) / 1000);
  }

  /** Leases past their expiry that nobody has queued a revoke for yet. */
  takeExpired(): Lease[] {
    const now = this.now();
    const out: Lease[] = [];
    for (const l of this.leases.values()) {
      if (!l.revoking && l.expiresAt <= now) {
        l.revoking = true;
        out.push(l);
      }
    }
    return out;
  }
}
