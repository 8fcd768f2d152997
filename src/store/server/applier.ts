// Applies etcd requests to the store with etcd's semantics (etcdserver/apply.go): one revision per write, txn paths, leases.
import { Errors } from './errors.js';
import { keyRange } from './key-range.js';
import { MAX_LEASE_TTL, MIN_LEASE_TTL, type Lessor } from './lessor.js';
import type { Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest } from './messages.js';
import { EMPTY, type MvccStore } from './mvcc.js';
import { NO_LEASE, type KeyValue } from './types.js';

/** A request that changes state: applied in order inside one group-commit batch. */
export type WriteOp =
  | { kind: 'put'; req: PutRequest }
  | { kind: 'deleteRange'; req: DeleteRangeRequest }
  | { kind: 'txn'; req: TxnRequest }
  | { kind: 'compact'; revision: number }
  | { kind: 'leaseGrant'; id: string; ttl: number }
  | { kind: 'leaseRevoke'; id: string };

/** Sub-responses carry only a revision in their header, as etcd's do; the services fill the top-level header. */
export interface PartialHeader {
  revision: number;
}

export interface RangeResponse {
  header: PartialHeader;
  kvs: KeyValue[];
  more: boolean;
  count: number;
}
/** A RangeResponse whose key-values are already encoded (consecutive RangeResponse.kvs entries). */
export interface WireRange {
  revision: number;
  kvs: Buffer;
  more: boolean;
  count: number;
}
export interface PutResponse {
  header: PartialHeader;
  prev_kv?: KeyValue;
}
export interface DeleteRangeResponse {
  header: PartialHeader;
  deleted: number;
  prev_kvs: KeyValue[];
}
export interface ResponseOp {
  response_range?: RangeResponse;
  response_put?: PutResponse;
  response_delete_range?: DeleteRangeResponse;
  response_txn?: TxnResponse;
}
export interface TxnResponse {
  header: PartialHeader;
  succeeded: boolean;
  responses: ResponseOp[];
}

/** The revision a write under way will take, and whether it has changed anything yet. */
interface WriteContext {
  rev: number;
  changed: boolean;
}

/** The revision a read inside `ctx` sees as "now": the write's own revision once it has changed something. */
const currentOf = (ctx: WriteContext) => (ctx.changed ? ctx.rev : ctx.rev - 1);

const num = (s: string | undefined) => (s === undefined ? 0 : Number(s));

export class Applier {
  constructor(
    private readonly store: MvccStore,
    private readonly lessor: Lessor,
  ) {}

  /** Applies one write inside the running batch. Throws an EtcdRpcError, before changing anything, when refused. */
  apply(op: WriteOp): unknown {
    this.store.raftIndex += 1;
    switch (op.kind) {
      case 'put':
        return this.put(op.req);
      case 'deleteRange':
        return this.deleteRange(op.req);
      case 'txn':
        return this.txn(op.req);
      case 'compact':
        return this.compact(op.revision);
      case 'leaseGrant':
        return this.leaseGrant(op.id, op.ttl);
      case 'leaseRevoke':
        return this.leaseRevoke(op.id);
    }
  }

  // ---- reads -------------------------------------------------------------------------------------------------

  /** The revision a read is served at (null: the current one), after etcd's checks: not in the future, not compacted. */
  private readAt(req: RangeRequest, current: number): number | null {
    let rev = num(req.revision);
    if (rev > current) throw Errors.futureRev();
    if (rev <= 0) rev = current;
    if (rev < this.store.compactRev) throw Errors.compacted();
    return rev === current ? null : rev;
  }

  range(req: RangeRequest, current = this.store.rev): RangeResponse {
    const at = this.readAt(req, current);
    const r = keyRange(req.key, req.range_end);
    if (req.count_only) return { header: { revision: current }, kvs: [], more: false, count: this.store.count(r, at) };

    const limit = num(req.limit);
    const minMod = num(req.min_mod_revision);
    const maxMod = num(req.max_mod_revision);
    const minCreate = num(req.min_create_revision);
    const maxCreate = num(req.max_create_revision);
    // Sorting or filtering needs every key; otherwise one extra tells whether there are more.
    const fetchAll = req.sort_order !== 'NONE' || minMod !== 0 || maxMod !== 0 || minCreate !== 0 || maxCreate !== 0;
    const fetchLimit = fetchAll ? 0 : limit > 0 ? limit + 1 : 0;
    let kvs = this.store.range(r, at, fetchLimit, !req.keys_only);
    // count is the number of keys in the range, before filters and limit.
    const count = fetchLimit === 0 || kvs.length < fetchLimit ? kvs.length : this.store.count(r, at);

    if (maxMod !== 0) kvs = kvs.filter((kv) => kv.mod_revision <= maxMod);
    if (minMod !== 0) kvs = kvs.filter((kv) => kv.mod_revision >= minMod);
    if (maxCreate !== 0) kvs = kvs.filter((kv) => kv.create_revision <= maxCreate);
    if (minCreate !== 0) kvs = kvs.filter((kv) => kv.create_revision >= minCreate);

    // Results come in key order; any other target sorts ascending unless told otherwise (as etcd does).
    let order = req.sort_order;
    if (req.sort_target !== 'KEY' && order === 'NONE') order = 'ASCEND';
    // Only the two orders etcd knows sort; an unknown enum value (decoded as its number) leaves key order, as in etcd.
    if (order === 'ASCEND' || order === 'DESCEND') {
      const cmp = sorter(req.sort_target);
      kvs.sort(order === 'ASCEND' ? cmp : (a, b) => cmp(b, a));
    }
    let more = false;
    if (limit > 0 && kvs.length > limit) {
      kvs = kvs.slice(0, limit);
      more = true;
    }
    return { header: { revision: current }, kvs, more, count };
  }

  /**
   * The common range (values wanted, key order, no revision filters) with its key-values already in wire form, read
   * by SQLite in one statement; undefined for any other range, which `range` serves. Same checks and answers as `range`.
   */
  rangeWire(req: RangeRequest, current = this.store.rev): WireRange | undefined {
    if (req.count_only || req.keys_only || req.sort_target !== 'KEY' || req.sort_order === 'DESCEND') return undefined;
    if (num(req.min_mod_revision) !== 0 || num(req.max_mod_revision) !== 0 || num(req.min_create_revision) !== 0 || num(req.max_create_revision) !== 0)
      return undefined;
    const at = this.readAt(req, current);
    const r = keyRange(req.key, req.range_end);
    const limit = num(req.limit);
    let got;
    try {
      got = this.store.rangeEncoded(r, at, limit);
    } catch (e) {
      // Over SQLite's 1 GB value limit: the key-by-key path has none.
      if ((e as { code?: string }).code === 'SQLITE_TOOBIG') return undefined;
      throw e;
    }
    const count = limit > 0 && got.n >= limit ? this.store.count(r, at) : got.n;
    return { revision: current, kvs: got.kvs, more: count > got.n, count };
  }

  /** A txn without puts or deletes in any branch: served outside the write queue. */
  readOnlyTxn(req: TxnRequest): TxnResponse {
    const path = this.compareToPath(req);
    this.checkRequests(req, path, (u) => this.checkRangeOp(u));
    const ctx: WriteContext = { rev: this.store.rev + 1, changed: false };
    const resp = this.applyTxn(req, path, { i: 0 }, ctx);
    resp.header.revision = this.store.rev;
    return resp;
  }

  // ---- writes ------------------------------------------------------------------------------------------------

  private put(req: PutRequest): PutResponse {
    if (req.lease !== NO_LEASE && !this.lessor.get(req.lease)) throw Errors.leaseNotFound();
    if ((req.ignore_value || req.ignore_lease) && !this.store.liveRow(req.key)) throw Errors.keyNotFound();
    const ctx: WriteContext = { rev: this.store.rev + 1, changed: false };
    const resp = this.doPut(req, ctx);
    this.store.rev = ctx.rev;
    return resp;
  }

  private deleteRange(req: DeleteRangeRequest): DeleteRangeResponse {
    const ctx: WriteContext = { rev: this.store.rev + 1, changed: false };
    const resp = this.doDeleteRange(req, ctx);
    if (ctx.changed) this.store.rev = ctx.rev;
    return resp;
  }

  private txn(req: TxnRequest): TxnResponse {
    const path = this.compareToPath(req);
    this.checkRequests(req, path, (u) => this.checkPutOp(u));
    this.checkRequests(req, path, (u) => this.checkRangeOp(u));
    const ctx: WriteContext = { rev: this.store.rev + 1, changed: false };
    const resp = this.applyTxn(req, path, { i: 0 }, ctx);
    if (ctx.changed) this.store.rev = ctx.rev;
    resp.header.revision = this.store.rev;
    return resp;
  }

  private compact(revision: number): { header: PartialHeader } {
    if (revision <= this.store.compactRev) throw Errors.compacted();
    if (revision > this.store.rev) throw Errors.futureRev();
    this.store.compactRev = revision;
    return { header: { revision: this.store.rev } };
  }

  private leaseGrant(id: string, ttl: number) {
    if (id === NO_LEASE) throw Errors.leaseNotFound();
    if (ttl > MAX_LEASE_TTL) throw Errors.leaseTTLTooLarge();
    if (this.lessor.get(id)) throw Errors.leaseExists();
    const lease = this.lessor.grant(id, Math.max(ttl, MIN_LEASE_TTL));
    return { header: { revision: this.store.rev }, ID: lease.id, TTL: lease.ttl, error: '' };
  }

  private leaseRevoke(id: string): { header: PartialHeader } {
    const lease = this.lessor.get(id);
    if (!lease) throw Errors.leaseNotFound();
    const ctx: WriteContext = { rev: this.store.rev + 1, changed: false };
    // In key order, so the delete events of one revoke always come in the same order.
    const keys = [...lease.keys.values()].sort(Buffer.compare);
    for (const key of keys) {
      const row = this.store.liveRow(key);
      if (!row) continue;
      this.store.delete(row, ctx.rev);
      ctx.changed = true;
    }
    this.lessor.remove(id);
    if (ctx.changed) this.store.rev = ctx.rev;
    return { header: { revision: this.store.rev } };
  }

  private doPut(req: PutRequest, ctx: WriteContext): PutResponse {
    const prev = this.store.liveRow(req.key);
    const value = req.ignore_value && prev ? this.store.valueOf(prev) : req.value;
    const lease = req.ignore_lease && prev ? prev.lease : req.lease;
    const resp: PutResponse = { header: { revision: ctx.rev } };
    if (req.prev_kv && prev) resp.prev_kv = this.store.toKeyValue(prev);
    this.store.put(req.key, value, lease, ctx.rev, prev);
    if (prev && prev.lease !== lease) this.lessor.detach(prev.lease, req.key);
    this.lessor.attach(lease, req.key);
    ctx.changed = true;
    return resp;
  }

  private doDeleteRange(req: DeleteRangeRequest, ctx: WriteContext): DeleteRangeResponse {
    const rows = this.store.liveRows(keyRange(req.key, req.range_end));
    const prev_kvs = req.prev_kv ? rows.map((row) => this.store.toKeyValue(row)) : [];
    for (const row of rows) {
      this.store.delete(row, ctx.rev);
      this.lessor.detach(row.lease, row.key);
    }
    if (rows.length > 0) ctx.changed = true;
    return { header: { revision: currentOf(ctx) }, deleted: rows.length, prev_kvs };
  }

  // ---- txn ---------------------------------------------------------------------------------------------------

  /** Which branch each txn (this one, then nested ones on the taken path, depth first) takes; decided before any op runs. */
  private compareToPath(req: TxnRequest): boolean[] {
    const ok = req.compare.every((c) => this.applyCompare(c));
    const path = [ok];
    for (const u of ok ? req.success : req.failure) {
      if (u.request === 'request_txn' && u.request_txn) path.push(...this.compareToPath(u.request_txn));
    }
    return path;
  }

  private applyCompare(c: Compare): boolean {
    const kvs = this.store.range(keyRange(c.key, c.range_end), null, 0, c.target === 'VALUE');
    if (kvs.length === 0) {
      // A missing key has no value to compare; other targets compare as zero.
      if (c.target === 'VALUE') return false;
      return compareKV(c, { key: c.key, create_revision: 0, mod_revision: 0, version: 0, value: EMPTY, lease: NO_LEASE });
    }
    return kvs.every((kv) => compareKV(c, kv));
  }

  /** Runs `check` over the ops of the taken branches, like etcd's checkRequests. */
  private checkRequests(req: TxnRequest, path: boolean[], check: (u: RequestOp) => void, at = { i: 0 }): void {
    const ops = path[at.i] ? req.success : req.failure;
    for (const u of ops) {
      if (u.request === 'request_txn' && u.request_txn) {
        at.i += 1;
        this.checkRequests(u.request_txn, path, check, at);
        continue;
      }
      check(u);
    }
  }

  private checkPutOp(u: RequestOp): void {
    if (u.request !== 'request_put' || !u.request_put) return;
    const p = u.request_put;
    if ((p.ignore_value || p.ignore_lease) && !this.store.liveRow(p.key)) throw Errors.keyNotFound();
    if (p.lease !== NO_LEASE && !this.lessor.get(p.lease)) throw Errors.leaseNotFound();
  }

  private checkRangeOp(u: RequestOp): void {
    if (u.request !== 'request_range' || !u.request_range) return;
    const rev = num(u.request_range.revision);
    if (rev === 0) return;
    if (rev > this.store.rev) throw Errors.futureRev();
    if (rev < this.store.compactRev) throw Errors.compacted();
  }

  private applyTxn(req: TxnRequest, path: boolean[], at: { i: number }, ctx: WriteContext): TxnResponse {
    const succeeded = path[at.i];
    const responses: ResponseOp[] = [];
    for (const u of succeeded ? req.success : req.failure) {
      switch (u.request) {
        case 'request_range':
          responses.push({ response_range: this.range(u.request_range!, currentOf(ctx)) });
          break;
        case 'request_put':
          responses.push({ response_put: this.doPut(u.request_put!, ctx) });
          break;
        case 'request_delete_range':
          responses.push({ response_delete_range: this.doDeleteRange(u.request_delete_range!, ctx) });
          break;
        case 'request_txn':
          at.i += 1;
          responses.push({ response_txn: this.applyTxn(u.request_txn!, path, at, ctx) });
          break;
        default:
          responses.push({});
      }
    }
    // A nested txn's header stays empty; the top level sets its revision.
    return { header: { revision: 0 }, succeeded, responses };
  }
}

function compareKV(c: Compare, kv: KeyValue): boolean {
  let result: number;
  switch (c.target) {
    case 'VALUE':
      result = Buffer.compare(kv.value, c.target_union === 'value' && c.value ? c.value : EMPTY);
      break;
    case 'CREATE':
      result = cmpNum(kv.create_revision, c.target_union === 'create_revision' ? num(c.create_revision) : 0);
      break;
    case 'MOD':
      result = cmpNum(kv.mod_revision, c.target_union === 'mod_revision' ? num(c.mod_revision) : 0);
      break;
    case 'VERSION':
      result = cmpNum(kv.version, c.target_union === 'version' ? num(c.version) : 0);
      break;
    case 'LEASE': {
      const a = BigInt(kv.lease);
      const b = BigInt(c.target_union === 'lease' && c.lease ? c.lease : '0');
      result = a < b ? -1 : a > b ? 1 : 0;
      break;
    }
    default:
      return true;
  }
  switch (c.result) {
    case 'EQUAL':
      return result === 0;
    case 'NOT_EQUAL':
      return result !== 0;
    case 'GREATER':
      return result > 0;
    case 'LESS':
      return result < 0;
    default:
      return true;
  }
}

const cmpNum = (a: number, b: number) => (a < b ? -1 : a > b ? 1 : 0);

function sorter(target: RangeRequest['sort_target']): (a: KeyValue, b: KeyValue) => number {
  switch (target) {
    case 'VERSION':
      return (a, b) => a.version - b.version;
    case 'CREATE':
      return (a, b) => a.create_revision - b.create_revision;
    case 'MOD':
      return (a, b) => a.mod_revision - b.mod_revision;
    case 'VALUE':
      return (a, b) => Buffer.compare(a.value, b.value);
    default:
      return (a, b) => Buffer.compare(a.key, b.key);
  }
}
