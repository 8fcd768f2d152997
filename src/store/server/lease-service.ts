// etcdserverpb.Lease: grants and revokes are durable writes; keep-alives only move the expiry in memory.
import type * as grpc from '@grpc/grpc-js';
import type { PartialHeader } from './applier.js';
import type { StoreCore } from './core.js';
import type { LeaseGrantRequest, LeaseIdRequest, LeaseTimeToLiveRequest } from './messages.js';
import { unary } from './rpc.js';

export function leaseService(core: StoreCore): grpc.UntypedServiceImplementation {
  const { lessor, writes } = core;
  return {
    LeaseGrant: unary(async (req: LeaseGrantRequest) => {
      // No ID given: choose one before the write, as etcd does before proposing it.
      const id = req.ID === '0' ? lessor.newId() : req.ID;
      const resp = await writes.submit<{ header: PartialHeader }>({ kind: 'leaseGrant', id, ttl: Number(req.TTL) });
      return { ...resp, header: core.header(resp.header.revision) };
    }),
    LeaseRevoke: unary(async (req: LeaseIdRequest) => {
      const resp = await writes.submit<{ header: PartialHeader }>({ kind: 'leaseRevoke', id: req.ID });
      return { ...resp, header: core.header(resp.header.revision) };
    }),
    LeaseTimeToLive: unary((req: LeaseTimeToLiveRequest) => {
      const lease = lessor.get(req.ID);
      // An unknown lease is not an error here: etcd answers TTL -1.
      if (!lease) return { header: core.header(), ID: req.ID, TTL: -1, grantedTTL: 0, keys: [] };
      const keys = req.keys ? [...lease.keys.values()].sort(Buffer.compare) : [];
      return { header: core.header(), ID: req.ID, TTL: lessor.remaining(lease), grantedTTL: lease.ttl, keys };
    }),
    LeaseLeases: unary(() => ({ header: core.header(), leases: lessor.list().map((ID) => ({ ID })) })),
    LeaseKeepAlive: (call: grpc.ServerDuplexStream<LeaseIdRequest, unknown>) => {
      call.on('data', (req: LeaseIdRequest) => {
        const header = core.header();
        // A lease that is gone or expired answers TTL 0, as etcd's keep-alive does.
        const ttl = lessor.renew(req.ID) ?? 0;
        call.write({ header, ID: req.ID, TTL: ttl });
      });
      call.on('end', () => call.end());
      call.on('error', () => undefined);
    },
  };
}
