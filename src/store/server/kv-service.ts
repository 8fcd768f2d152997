// etcdserverpb.KV over the store: reads answered at once, writes through group commit.
import type * as grpc from '@grpc/grpc-js';
import type { PartialHeader, PutResponse } from './applier.js';
import type { StoreCore } from './core.js';
import { Errors } from './errors.js';
import type { CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest } from './messages.js';
import { checkDelete, checkPut, checkRange, checkTxn, isTxnReadOnly, MAX_REQUEST_BYTES } from './request-checks.js';
import { requestBytes, unary } from './rpc.js';
import { encodePutResponse, encodeRangeResponse } from './wire.js';

/**
 * etcd measures the raft entry: the request plus an InternalRaftRequest envelope (two request IDs and field tags),
 * about 27 bytes for a request of this size.
 */
const RAFT_ENVELOPE_BYTES = 27;

function checkSize(req: object): void {
  if (requestBytes(req) + RAFT_ENVELOPE_BYTES > MAX_REQUEST_BYTES) throw Errors.requestTooLarge();
}

export function kvService(core: StoreCore): grpc.UntypedServiceImplementation {
  const withHeader = <T extends { header: PartialHeader }>(resp: T) => ({ ...resp, header: core.header(resp.header.revision) });
  return {
    Range: unary((req: RangeRequest) => {
      checkRange(req);
      // Most ranges come back from SQLite already encoded; the rest are built key by key.
      const wire = core.applier.rangeWire(req);
      if (wire) return encodeRangeResponse(core.header(wire.revision), wire.kvs, wire.more, wire.count);
      return withHeader(core.applier.range(req));
    }),
    Put: unary(async (req: PutRequest) => {
      checkPut(req);
      checkSize(req);
      const resp = await core.writes.submit<PutResponse>({ kind: 'put', req });
      return encodePutResponse(core.header(resp.header.revision), resp.prev_kv);
    }),
    DeleteRange: unary(async (req: DeleteRangeRequest) => {
      checkDelete(req);
      checkSize(req);
      return withHeader(await core.writes.submit<{ header: PartialHeader }>({ kind: 'deleteRange', req }));
    }),
    Txn: unary(async (req: TxnRequest) => {
      checkTxn(req);
      if (isTxnReadOnly(req)) return withHeader(core.applier.readOnlyTxn(req));
      checkSize(req);
      return withHeader(await core.writes.submit<{ header: PartialHeader }>({ kind: 'txn', req }));
    }),
    Compact: unary(async (req: CompactionRequest) => {
      const revision = Number(req.revision);
      const resp = await core.writes.submit<{ header: PartialHeader }>({ kind: 'compact', revision });
      core.compactor.kick();
      if (req.physical) await core.compactor.waitFor(revision);
      return withHeader(resp);
    }),
  };
}
