// etcdserverpb.Maintenance and Cluster for a one-member cluster: status, alarms, defragment, member list.
import type * as grpc from '@grpc/grpc-js';
import type { StoreCore } from './core.js';
import type { AlarmRequest } from './messages.js';
import { unary } from './rpc.js';

/** The etcd release whose API and behaviour this server follows; clients read it from Status. */
export const ETCD_VERSION = '3.4.23';

export function maintenanceService(core: StoreCore): grpc.UntypedServiceImplementation {
  const { store } = core;
  return {
    Status: unary(() => {
      const size = store.dbSize();
      return {
        header: core.header(),
        version: ETCD_VERSION,
        dbSize: size.size,
        leader: core.identity.memberId,
        raftIndex: store.raftIndex,
        raftTerm: store.raftTerm,
        raftAppliedIndex: store.raftIndex,
        errors: core.writes.noSpace ? [`memberID:${core.identity.memberId} alarm:NOSPACE`] : [],
        dbSizeInUse: size.inUse,
        isLearner: false,
      };
    }),
    // The one alarm is NOSPACE, raised while the disk is full (the last commit failed for space) and gone with the
    // next commit that succeeds: unlike etcd's quota alarm it needs no disarm. ACTIVATE and DEACTIVATE change nothing.
    Alarm: unary((_req: AlarmRequest) => ({
      header: core.header(),
      alarms: core.writes.noSpace ? [{ memberID: core.identity.memberId, alarm: 'NOSPACE' }] : [],
    })),
    Defragment: unary(async () => {
      // Between batches, so no write transaction is open.
      await new Promise((r) => setImmediate(r));
      store.db.exec('VACUUM');
      store.db.pragma('wal_checkpoint(TRUNCATE)');
      return { header: core.header() };
    }),
  };
}

export function clusterService(core: StoreCore, clientUrl: () => string): grpc.UntypedServiceImplementation {
  return {
    MemberList: unary(() => ({
      header: core.header(),
      members: [{ ID: core.identity.memberId, name: core.identity.name, peerURLs: [], clientURLs: [clientUrl()], isLearner: false }],
    })),
  };
}
