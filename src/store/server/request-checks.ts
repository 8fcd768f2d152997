// Checks etcd makes on a request before it reaches the store (etcdserver/api/v3rpc/key.go), with the same errors.
import { Errors } from './errors.js';
import type { DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest } from './messages.js';

/** etcd's --max-txn-ops default. */
export const MAX_TXN_OPS = 128;
/** etcd's --max-request-bytes default: a write request larger than this is refused. */
export const MAX_REQUEST_BYTES = 1.5 * 1024 * 1024;
/** etcd lets gRPC read this much more than MAX_REQUEST_BYTES before its own check answers. */
export const GRPC_OVERHEAD_BYTES = 512 * 1024;

export function checkRange(r: RangeRequest): void {
  if (r.key.length === 0) throw Errors.emptyKey();
}

export function checkPut(r: PutRequest): void {
  if (r.key.length === 0) throw Errors.emptyKey();
  if (r.ignore_value && r.value.length !== 0) throw Errors.valueProvided();
  if (r.ignore_lease && r.lease !== '0') throw Errors.leaseProvided();
}

export function checkDelete(r: DeleteRangeRequest): void {
  if (r.key.length === 0) throw Errors.emptyKey();
}

export function checkTxn(r: TxnRequest, maxTxnOps = MAX_TXN_OPS): void {
  const opc = Math.max(r.compare.length, r.success.length, r.failure.length);
  if (opc > maxTxnOps) throw Errors.tooManyOps();
  for (const c of r.compare) if (c.key.length === 0) throw Errors.emptyKey();
  for (const u of [...r.success, ...r.failure]) checkRequestOp(u, maxTxnOps - opc);
  // Forbidden put/delete overlaps are checked after the rest, as etcd does, to avoid quadratic work on bad input.
  checkIntervals(r.success);
  checkIntervals(r.failure);
}

function checkRequestOp(u: RequestOp, maxTxnOps: number): void {
  switch (u.request) {
    case 'request_range':
      return checkRange(u.request_range!);
    case 'request_put':
      return checkPut(u.request_put!);
    case 'request_delete_range':
      return checkDelete(u.request_delete_range!);
    case 'request_txn':
      return checkTxn(u.request_txn!, maxTxnOps);
    default:
      // An empty RequestOp: etcd answers "key not found".
      throw Errors.keyNotFound();
  }
}

/** [begin, end) where an empty end stands above every key (etcd's StringAffineComparable). */
interface Interval {
  begin: Buffer;
  end: Buffer;
}

function intersectsPoint(dels: Interval[], k: Buffer): boolean {
  return dels.some((d) => Buffer.compare(d.begin, k) <= 0 && (d.end.length === 0 || Buffer.compare(k, d.end) < 0));
}

/**
 * A txn may not write one key twice: no two puts of a key, no put inside a deleted range, across nested txns
 * (then and else branches of one nested txn may put the same key). A port of etcd's checkIntervals, including
 * its reading of a "\0" range_end as the interval [key, "\0"), which overlaps nothing.
 */
function checkIntervals(reqs: RequestOp[]): { puts: Set<string>; dels: Interval[] } {
  const dels: Interval[] = [];
  for (const r of reqs) {
    if (r.request !== 'request_delete_range' || !r.request_delete_range) continue;
    const d = r.request_delete_range;
    dels.push(d.range_end.length ? { begin: d.key, end: d.range_end } : { begin: d.key, end: Buffer.concat([d.key, Buffer.from([0])]) });
  }
  const puts = new Set<string>();
  for (const r of reqs) {
    if (r.request !== 'request_txn' || !r.request_txn) continue;
    const then = checkIntervals(r.request_txn.success);
    const otherwise = checkIntervals(r.request_txn.failure);
    for (const k of then.puts) {
      if (puts.has(k) || intersectsPoint(dels, Buffer.from(k, 'latin1'))) throw Errors.duplicateKey();
      puts.add(k);
    }
    for (const k of otherwise.puts) {
      if (puts.has(k) && !then.puts.has(k)) throw Errors.duplicateKey();
      if (intersectsPoint(dels, Buffer.from(k, 'latin1'))) throw Errors.duplicateKey();
      puts.add(k);
    }
    dels.push(...then.dels, ...otherwise.dels);
  }
  for (const r of reqs) {
    if (r.request !== 'request_put' || !r.request_put) continue;
    const k = r.request_put.key;
    const s = k.toString('latin1');
    if (puts.has(s) || intersectsPoint(dels, k)) throw Errors.duplicateKey();
    puts.add(s);
  }
  return { puts, dels };
}

/** Whether any branch of the txn writes: a read-only txn is served without a write. */
export function isTxnReadOnly(r: TxnRequest): boolean {
  for (const u of [...r.success, ...r.failure]) {
    if (u.request === 'request_put' || u.request === 'request_delete_range') return false;
    if (u.request === 'request_txn' && u.request_txn && !isTxnReadOnly(u.request_txn)) return false;
  }
  return true;
}
