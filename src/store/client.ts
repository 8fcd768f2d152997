// The one store client of trustplane: a small typed etcd v3 API on the npm etcd3 package, for the embedded store and real etcd alike.
import type { IKeyValue, IRangeResponse, IRequestOp, ITxnResponse } from 'etcd3';
import { TrustplaneError } from '../util/errors.js';
import { endStream, EndpointPool, type StoreTls } from './endpoints.js';
import { COMPACTED, StoreCompactedError, StoreInDoubtError, toTrustplaneError } from './errors.js';
import { keyBytes, prefixEnd } from './keys.js';
import { keepLeaseAlive, type LeaseKeeper } from './lease-keeper.js';
import { kvFromWire, type KeyValue, type LeaseId, type Revision, type WatchEvent } from './types.js';
import { WatchHub, type StoreWatch, type WatchOptions } from './watch.js';

export type { StoreTls } from './endpoints.js';
export type { KeyValue, LeaseId, Revision, WatchEvent } from './types.js';
export type { StoreWatch, WatchOptions } from './watch.js';
export type { LeaseKeeper } from './lease-keeper.js';
export { StoreCompactedError } from './errors.js';
export { NO_LEASE } from './types.js';

export interface StoreOptions {
  /** https://host:port of each member; calls fail over between them. */
  endpoints: string[];
  tls: StoreTls;
  /** Budget of one call, failover and retries included. Default 10 s. */
  timeoutMs?: number;
}

export interface RangeResult {
  kvs: KeyValue[];
  /** More keys matched than `limit` allowed. */
  more: boolean;
  /** How many keys matched, limit aside. */
  count: number;
  /** The store revision the read was served at. */
  revision: Revision;
}

export interface WriteResult {
  /** The store revision after the write. */
  revision: Revision;
}

export interface EndpointStatus {
  endpoint: string;
  /** Present when the endpoint did not answer; the other fields are then absent. */
  error?: string;
  version?: string;
  revision?: Revision;
  dbSize?: number;
  memberId?: string;
  leader?: string;
  raftTerm?: string;
  isLeader?: boolean;
}

export interface Store {
  readonly endpoints: readonly string[];
  get(key: string): Promise<KeyValue | null>;
  /** Keys starting with `prefix`, in key order. */
  getPrefix(prefix: string, o?: { limit?: number; revision?: Revision; keysOnly?: boolean }): Promise<RangeResult>;
  put(key: string, value: string | Buffer, o?: { lease?: LeaseId; prevKv?: boolean }): Promise<WriteResult & { prevKv: KeyValue | null }>;
  delete(key: string): Promise<WriteResult & { deleted: number }>;
  deletePrefix(prefix: string): Promise<WriteResult & { deleted: number }>;
  /** Writes the key only if it does not exist; false if it does. */
  createIfAbsent(key: string, value: string | Buffer, o?: { lease?: LeaseId }): Promise<boolean>;
  /**
   * Writes the key only if its mod revision is still `modRevision` (0n: only if absent). On success `modRevision` is the
   * new one; on a conflict it is the key's current one (0n if the key is gone).
   */
  updateIfModRevision(key: string, value: string | Buffer, modRevision: Revision, o?: { lease?: LeaseId }): Promise<{ ok: boolean; modRevision: Revision }>;
  /** Deletes the key only if its mod revision is still `modRevision`; on a conflict, `modRevision` is the current one. */
  deleteIfModRevision(key: string, modRevision: Revision): Promise<{ ok: boolean; modRevision: Revision }>;
  /**
   * Calls `onEvent` for every change under `prefix`, in revision order, from `startRevision` (or from now). Resolves once
   * the store has accepted the watch. Survives endpoint failures by resuming from the next undelivered revision.
   */
  watchPrefix(prefix: string, o: WatchOptions, onEvent: (ev: WatchEvent) => void): Promise<StoreWatch>;
  grantLease(ttlSeconds: number, o?: { id?: LeaseId }): Promise<{ id: LeaseId; ttl: number }>;
  /** One renewal; NotFound if the lease has expired or was revoked. */
  keepAliveOnce(id: LeaseId): Promise<{ ttl: number }>;
  /** Renews the lease in the background until stop() or until it is lost. */
  keepAlive(id: LeaseId, o?: { onLost?: (e: TrustplaneError) => void }): Promise<LeaseKeeper>;
  /** Revokes the lease, deleting its keys. A lease already gone is not an error. */
  revokeLease(id: LeaseId): Promise<void>;
  /** Remaining and granted TTL and attached keys; null once the lease is gone. */
  leaseTimeToLive(id: LeaseId): Promise<{ ttl: number; grantedTtl: number; keys: string[] } | null>;
  /** Every endpoint's status (an unreachable one carries `error`). */
  status(): Promise<EndpointStatus[]>;
  /** New client credentials, for calls from now on; watches move to them without losing an event. */
  setTls(tls: StoreTls): void;
  close(): Promise<void>;
}

export async function openStore(o: StoreOptions): Promise<Store> {
  return new StoreClient(o);
}

/** How many times a compare-and-swap is sent while its outcome stays in doubt. */
const MAX_CAS_ATTEMPTS = 3;

const asBuffer = (v: string | Buffer) => (typeof v === 'string' ? Buffer.from(v, 'utf8') : v);

class StoreClient implements Store {
  private readonly pool: EndpointPool;
  private readonly hub: WatchHub;
  private readonly keepers = new Set<LeaseKeeper>();

  constructor(o: StoreOptions) {
    this.pool = new EndpointPool(o.endpoints, o.tls, o.timeoutMs ?? 10_000);
    this.hub = new WatchHub(this.pool);
  }

  get endpoints(): readonly string[] {
    return this.pool.endpoints.map((e) => e.url);
  }

  setTls(tls: StoreTls): void {
    this.pool.setTls(tls);
  }

  async get(key: string): Promise<KeyValue | null> {
    const k = keyBytes(key);
    const r = await this.pool.call(`get ${key}`, 'idempotent', (ep, deadline) => ep.etcd.kv.range({ key: k }, { deadline }));
    return r.kvs.length ? kvFromWire(r.kvs[0]) : null;
  }

  async getPrefix(prefix: string, o: { limit?: number; revision?: Revision; keysOnly?: boolean } = {}): Promise<RangeResult> {
    const k = keyBytes(prefix, 'prefix');
    const r: IRangeResponse = await this.pool.call(
      `range ${prefix}*`,
      'idempotent',
      (ep, deadline) =>
        ep.etcd.kv.range(
          { key: k, range_end: prefixEnd(k), limit: o.limit ?? 0, revision: o.revision?.toString() ?? 0, keys_only: o.keysOnly ?? false },
          { deadline },
        ),
      (f, ep) => (f.details.includes(COMPACTED) ? new StoreCompactedError(ep.url, o.revision, undefined) : toTrustplaneError(`range ${prefix}*`, ep.url, f)),
    );
    return { kvs: r.kvs.map(kvFromWire), more: r.more, count: Number(r.count), revision: BigInt(r.header.revision) };
  }

  async put(key: string, value: string | Buffer, o: { lease?: LeaseId; prevKv?: boolean } = {}) {
    const k = keyBytes(key);
    const r = await this.pool.call(`put ${key}`, 'idempotent', (ep, deadline) =>
      ep.etcd.kv.put({ key: k, value: asBuffer(value), lease: o.lease ?? 0, prev_kv: o.prevKv ?? false }, { deadline }),
    );
    return { revision: BigInt(r.header.revision), prevKv: r.prev_kv ? kvFromWire(r.prev_kv) : null };
  }

  async delete(key: string) {
    const k = keyBytes(key);
    const r = await this.pool.call(`delete ${key}`, 'idempotent', (ep, deadline) => ep.etcd.kv.deleteRange({ key: k }, { deadline }));
    return { revision: BigInt(r.header.revision), deleted: Number(r.deleted) };
  }

  async deletePrefix(prefix: string) {
    const k = keyBytes(prefix, 'prefix');
    const r = await this.pool.call(`delete ${prefix}*`, 'idempotent', (ep, deadline) =>
      ep.etcd.kv.deleteRange({ key: k, range_end: prefixEnd(k) }, { deadline }),
    );
    return { revision: BigInt(r.header.revision), deleted: Number(r.deleted) };
  }

  async createIfAbsent(key: string, value: string | Buffer, o: { lease?: LeaseId } = {}): Promise<boolean> {
    return (await this.updateIfModRevision(key, value, 0n, o)).ok;
  }

  async updateIfModRevision(key: string, value: string | Buffer, modRevision: Revision, o: { lease?: LeaseId } = {}) {
    const k = keyBytes(key);
    const bytes = asBuffer(value);
    return this.casTxn(`compare-and-put ${key}`, k, modRevision, { request_put: { key: k, value: bytes, lease: o.lease ?? 0 } }, (kv) => !!kv && Buffer.from(kv.value).equals(bytes));
  }

  async deleteIfModRevision(key: string, modRevision: Revision) {
    const k = keyBytes(key);
    return this.casTxn(`compare-and-delete ${key}`, k, modRevision, { request_delete_range: { key: k } }, (kv) => !kv);
  }

  /**
   * One compare of the key's mod revision; the failure branch reads the key so a conflict reports what is there now.
   * When the outcome is in doubt (the member or connection failed with the request in flight), the request is sent once
   * more with the failure branch reading the value too: if the first attempt was applied, the second conflicts with it
   * and the key holds exactly what it wrote (`applied` says so: our bytes, or for a delete no key), which is a success.
   * So a member restarting under a write neither fails it nor reports a conflict with itself.
   */
  private async casTxn(op: string, k: Buffer, modRevision: Revision, then: IRequestOp, applied: (kv: IKeyValue | undefined) => boolean): Promise<{ ok: boolean; modRevision: Revision }> {
    const txn = (readValue: boolean) =>
      this.pool.call(op, 'not-in-doubt', (ep, deadline) =>
        ep.etcd.kv.txn(
          {
            compare: [{ key: k, target: 'Mod', result: 'Equal', mod_revision: modRevision.toString() }],
            success: [then],
            failure: [{ request_range: { key: k, keys_only: !readValue } }],
          },
          { deadline },
        ),
      );
    let r: ITxnResponse | undefined;
    let resent = false;
    // Sent again while in doubt, up to three times: each attempt is a call with its own budget and failover.
    for (let attempt = 1; !r; attempt++) {
      try {
        r = await txn(resent);
      } catch (e) {
        if (!(e instanceof StoreInDoubtError) || attempt >= MAX_CAS_ATTEMPTS) {
          // After a first attempt in doubt, a later one that fails on the transport leaves it in doubt still.
          if (resent && e instanceof TrustplaneError && (e instanceof StoreInDoubtError || e.reason === 'Unavailable' || e.reason === 'Timeout'))
            throw new StoreInDoubtError(`${e.message} (sent ${attempt} times; an attempt in doubt may have been applied)`, 're-read the key to see whether it was applied before trying again');
          throw e;
        }
        resent = true;
      }
    }
    if (r.succeeded) return { ok: true, modRevision: BigInt(r.header.revision) };
    const current = r.responses[0]?.response_range?.kvs[0];
    if (resent && applied(current)) return { ok: true, modRevision: current ? BigInt(current.mod_revision) : BigInt(r.header.revision) };
    return { ok: false, modRevision: current ? BigInt(current.mod_revision) : 0n };
  }

  async watchPrefix(prefix: string, o: WatchOptions, onEvent: (ev: WatchEvent) => void): Promise<StoreWatch> {
    const k = keyBytes(prefix, 'prefix');
    return this.hub.watch(k, prefixEnd(k), o, onEvent);
  }

  async grantLease(ttlSeconds: number, o: { id?: LeaseId } = {}) {
    if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) {
      throw new TrustplaneError('BadRequest', `store lease TTL ${ttlSeconds} is not a positive whole number of seconds`);
    }
    const r = await this.pool.call('lease grant', o.id ? 'not-in-doubt' : 'idempotent', (ep, deadline) =>
      ep.etcd.leaseClient.leaseGrant({ TTL: ttlSeconds, ID: o.id ?? 0 }, { deadline }),
    );
    if (r.error) throw new TrustplaneError('Internal', `store lease grant: ${r.error}`);
    return { id: String(r.ID), ttl: Number(r.TTL) };
  }

  async keepAliveOnce(id: LeaseId): Promise<{ ttl: number }> {
    const r = await this.pool.call(`lease keepalive ${id}`, 'idempotent', async (ep, deadline) => {
      const s = await ep.etcd.leaseClient.leaseKeepAlive({ deadline });
      try {
        return await new Promise<{ TTL: string }>((resolve, reject) => {
          s.on('data', resolve);
          s.on('error', reject);
          s.on('end', () => reject(new Error('14 UNAVAILABLE: keepalive stream ended')));
          s.write({ ID: id });
        });
      } finally {
        endStream(s);
      }
    });
    if (Number(r.TTL) <= 0) throw new TrustplaneError('NotFound', `store lease ${id} has expired or was revoked`, 'grant a new lease');
    return { ttl: Number(r.TTL) };
  }

  async keepAlive(id: LeaseId, o: { onLost?: (e: TrustplaneError) => void } = {}): Promise<LeaseKeeper> {
    const first = await this.keepAliveOnce(id);
    const k = keepLeaseAlive(this.pool, id, first.ttl, o.onLost);
    this.keepers.add(k);
    void k.lost.then(() => this.keepers.delete(k));
    return k;
  }

  async revokeLease(id: LeaseId): Promise<void> {
    try {
      await this.pool.call(`lease revoke ${id}`, 'idempotent', (ep, deadline) => ep.etcd.leaseClient.leaseRevoke({ ID: id }, { deadline }));
    } catch (e) {
      if (e instanceof TrustplaneError && e.reason === 'NotFound') return;
      throw e;
    }
  }

  async leaseTimeToLive(id: LeaseId) {
    const r = await this.pool.call(`lease time-to-live ${id}`, 'idempotent', (ep, deadline) =>
      ep.etcd.leaseClient.leaseTimeToLive({ ID: id, keys: true }, { deadline }),
    );
    if (Number(r.TTL) < 0) return null;
    return { ttl: Number(r.TTL), grantedTtl: Number(r.grantedTTL), keys: r.keys.map((k) => Buffer.from(k).toString('utf8')) };
  }

  async status(): Promise<EndpointStatus[]> {
    return Promise.all(
      this.pool.endpoints.map(async (ep): Promise<EndpointStatus> => {
        try {
          const s = await ep.etcd.maintenance.status({ deadline: Date.now() + Math.min(this.pool.timeoutMs, 5000) });
          return {
            endpoint: ep.url,
            version: s.version,
            revision: BigInt(s.header.revision),
            dbSize: Number(s.dbSize),
            memberId: String(s.header.member_id),
            leader: String(s.leader),
            raftTerm: String(s.raftTerm),
            isLeader: String(s.leader) === String(s.header.member_id),
          };
        } catch (e) {
          return { endpoint: ep.url, error: (e as Error)?.message ?? String(e) };
        }
      }),
    );
  }

  async close(): Promise<void> {
    for (const k of this.keepers) k.stop();
    this.hub.close();
    this.pool.close();
  }
}

