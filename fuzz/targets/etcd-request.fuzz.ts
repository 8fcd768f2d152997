// Fuzz target: etcd v3 gRPC request messages, decoded by the store server's own deserializers and validated as its
// services do; a decoded Put is also answered through wire.ts's hand-written encoder and read back.
//
// Input: one selector byte, then the message. byte % 12 picks the method ('0' Range, '1' Put, '2' DeleteRange, '3' Txn,
// '4' Compact, '5' Watch, '6' LeaseGrant, '7' LeaseRevoke, '8' LeaseKeepAlive, '9' LeaseTimeToLive, ':' Alarm, ';' Status).
import type * as grpc from '@grpc/grpc-js';
import { keyRange } from '../../src/store/server/key-range.js';
import type { DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest, WatchRequest } from '../../src/store/server/messages.js';
import { etcdPackageDefinition } from '../../src/store/server/proto.js';
import { checkDelete, checkPut, checkRange, checkTxn, isTxnReadOnly } from '../../src/store/server/request-checks.js';
import { requestBytes, withRequestSizes } from '../../src/store/server/rpc.js';
import { encodePutResponse, withEncodedResponses } from '../../src/store/server/wire.js';
import { isEtcdRefusal, refusalsOnly } from '../refusals.js';

const METHODS: Array<[service: string, method: string]> = [
  ['KV', 'Range'],
  ['KV', 'Put'],
  ['KV', 'DeleteRange'],
  ['KV', 'Txn'],
  ['KV', 'Compact'],
  ['Watch', 'Watch'],
  ['Lease', 'LeaseGrant'],
  ['Lease', 'LeaseRevoke'],
  ['Lease', 'LeaseKeepAlive'],
  ['Lease', 'LeaseTimeToLive'],
  ['Maintenance', 'Alarm'],
  ['Maintenance', 'Status'],
];

// The services exactly as startStoreServer() registers them: request sizes recorded, encoded responses passed through.
const pkg = etcdPackageDefinition();
const services = new Map<string, grpc.ServiceDefinition>();
for (const name of new Set(METHODS.map(([s]) => s))) {
  services.set(name, withEncodedResponses(withRequestSizes(pkg[`etcdserverpb.${name}`] as grpc.ServiceDefinition)));
}
const method = (s: string, m: string) => services.get(s)![m] as grpc.MethodDefinition<unknown, unknown>;

const INT64 = /^-?\d+$/;

/** A decoded Put answered with itself as prev_kv through wire.ts, then read back by protobufjs: the same key-value. */
function putRoundTrip(req: PutRequest): void {
  const lease = BigInt.asIntN(64, BigInt(req.lease)).toString();
  const rev = req.value.length;
  const kv = { key: req.key, value: req.value, create_revision: rev, mod_revision: rev + 1, version: req.key.length, lease };
  const header = { cluster_id: '18446744073709551615', member_id: '1', revision: rev + 1, raft_term: 2 };
  const put = method('KV', 'Put');
  const bytes = put.responseSerialize(encodePutResponse(header, kv));
  const back = put.responseDeserialize(bytes) as { header: Record<string, string>; prev_kv: Record<string, unknown> };
  const got = back.prev_kv;
  const same =
    Buffer.compare(got.key as Buffer, kv.key) === 0 &&
    Buffer.compare(got.value as Buffer, kv.value) === 0 &&
    got.create_revision === String(kv.create_revision) &&
    got.mod_revision === String(kv.mod_revision) &&
    got.version === String(kv.version) &&
    got.lease === lease &&
    back.header.cluster_id === header.cluster_id &&
    back.header.revision === String(header.revision);
  if (!same) throw new Error(`wire.ts: PutResponse does not read back as written: ${JSON.stringify(back)}`);
}

function validate(service: string, name: string, req: unknown): void {
  switch (`${service}.${name}`) {
    case 'KV.Range': {
      const r = req as RangeRequest;
      checkRange(r);
      keyRange(r.key, r.range_end);
      return;
    }
    case 'KV.Put': {
      const r = req as PutRequest;
      if (!INT64.test(r.lease)) throw new Error(`PutRequest.lease decoded as ${JSON.stringify(r.lease)}, not an int64 string`);
      checkPut(r);
      putRoundTrip(r);
      return;
    }
    case 'KV.DeleteRange': {
      const r = req as DeleteRangeRequest;
      checkDelete(r);
      keyRange(r.key, r.range_end);
      return;
    }
    case 'KV.Txn': {
      const r = req as TxnRequest;
      checkTxn(r);
      isTxnReadOnly(r);
      return;
    }
    case 'Watch.Watch': {
      const r = req as WatchRequest;
      const c = r.request_union === 'create_request' ? r.create_request : undefined;
      if (c) keyRange(c.key.length > 0 ? c.key : Buffer.from([0]), c.range_end);
      return;
    }
  }
}

export function fuzz(data: Buffer): void {
  if (data.length === 0) return;
  const [service, name] = METHODS[data[0] % METHODS.length];
  let req: unknown;
  try {
    req = method(service, name).requestDeserialize(data.subarray(1));
  } catch {
    // grpc-js answers any deserializer error with INTERNAL "Error deserializing request", as grpc-go does for bad protobuf.
    return;
  }
  if (typeof req !== 'object' || req === null) throw new Error(`${name} decoded to ${String(req)}`);
  if (requestBytes(req) !== data.length - 1) throw new Error(`${name}: recorded size ${requestBytes(req)} is not the wire size ${data.length - 1}`);
  refusalsOnly(() => validate(service, name, req), isEtcdRefusal);
}
