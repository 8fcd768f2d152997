// Fuzz target: decoded etcd Range and read-only Txn requests served by a real store (SQLite in a temp folder), where the
// SQL-encoded fast path (rangeWire) must answer exactly as the key-by-key path (range) does.
//
// Input: one selector byte, then the message: even '0' Range, odd '1' Txn (only read-only ones are served).
import type * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_TUNING, StoreCore } from '../../src/store/server/core.js';
import type { PutRequest, RangeRequest, TxnRequest } from '../../src/store/server/messages.js';
import { etcdPackageDefinition } from '../../src/store/server/proto.js';
import { checkRange, checkTxn, isTxnReadOnly } from '../../src/store/server/request-checks.js';
import { withRequestSizes } from '../../src/store/server/rpc.js';
import { encodeRangeResponse, withEncodedResponses } from '../../src/store/server/wire.js';
import { systemClock } from '../../src/util/clock.js';
import { isEtcdRefusal, refusalsOnly } from '../refusals.js';

const kv = withEncodedResponses(withRequestSizes(etcdPackageDefinition()['etcdserverpb.KV'] as grpc.ServiceDefinition));
const Range = kv.Range as grpc.MethodDefinition<unknown, unknown>;
const Txn = kv.Txn as grpc.MethodDefinition<unknown, unknown>;

// One store for the whole run, removed when the process ends.
const dir = mkdtempSync(join(tmpdir(), 'tp-fuzz-store-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const core = new StoreCore({
  dbPath: join(dir, 'state.db'),
  synchronous: 'NORMAL',
  clock: systemClock,
  identity: { clusterId: '14841639068965178418', memberId: '10276657743932975437', name: 'fuzz' },
  tuning: DEFAULT_TUNING,
});
process.on('exit', () => core.close());

// A small history: keys written twice, one deleted, one with a lease, a compaction in the middle.
const put = (key: string, value: string, lease = '0') =>
  core.writes.submit({ kind: 'put', req: { key: Buffer.from(key), value: Buffer.from(value), lease, prev_kv: false, ignore_value: false, ignore_lease: false } satisfies PutRequest });
await core.writes.submit({ kind: 'leaseGrant', id: '7587883116547313923', ttl: 3600 });
for (let i = 0; i < 12; i++) await put(`/registry/nodes/n${i}`, `{"v":${i}}`);
await put('/registry/leases/n1', 'lease', '7587883116547313923');
await put('a', '');
await put('\u0000', 'zero');
await put('\u00ff\u00ff', 'high');
await core.writes.submit({ kind: 'compact', revision: 5 });
for (let i = 0; i < 6; i++) await put(`/registry/nodes/n${i}`, `{"v":${i},"again":true}`);
await core.writes.submit({ kind: 'deleteRange', req: { key: Buffer.from('/registry/nodes/n3'), range_end: Buffer.alloc(0), prev_kv: false } });

type Decoded = { header?: unknown; kvs: Array<Record<string, unknown>>; more: boolean; count: string };

function serveRange(req: RangeRequest): void {
  checkRange(req);
  const wire = core.applier.rangeWire(req);
  const plain = core.applier.range(req);
  const fromPlain = Range.responseDeserialize(Range.responseSerialize({ ...plain, header: core.header(plain.header.revision) })) as Decoded;
  if (!wire) return;
  const fromWire = Range.responseDeserialize(Range.responseSerialize(encodeRangeResponse(core.header(wire.revision), wire.kvs, wire.more, wire.count))) as Decoded;
  const a = JSON.stringify(fromWire);
  const b = JSON.stringify(fromPlain);
  if (a !== b) throw new Error(`rangeWire and range answer ${JSON.stringify(req)} differently:\n wire  ${a}\n range ${b}`);
}

function serveTxn(req: TxnRequest): void {
  checkTxn(req);
  if (!isTxnReadOnly(req)) return;
  const resp = core.applier.readOnlyTxn(req);
  Txn.responseDeserialize(Txn.responseSerialize({ ...resp, header: core.header(resp.header.revision) }));
}

export function fuzz(data: Buffer): void {
  if (data.length === 0) return;
  const isRange = data[0] % 2 === 0;
  let req: unknown;
  try {
    req = (isRange ? Range : Txn).requestDeserialize(data.subarray(1));
  } catch {
    return; // grpc-js answers INTERNAL "Error deserializing request"
  }
  refusalsOnly(() => (isRange ? serveRange(req as RangeRequest) : serveTxn(req as TxnRequest)), isEtcdRefusal);
}
