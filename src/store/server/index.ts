// Entry point of the embedded state store: an etcd v3 API (gRPC over mutual TLS) served from SQLite.
import * as grpc from '@grpc/grpc-js';
import type { Clock } from '../../util/clock.js';
import { systemClock } from '../../util/clock.js';
import { admitConnection } from './connection-intake.js';
import { DEFAULT_TUNING, StoreCore, type Tuning } from './core.js';
import { identityOf } from './identity.js';
import { kvService } from './kv-service.js';
import { leaseService } from './lease-service.js';
import { clusterService, maintenanceService } from './maintenance-service.js';
import { etcdPackageDefinition } from './proto.js';
import { GRPC_OVERHEAD_BYTES, MAX_REQUEST_BYTES } from './request-checks.js';
import { withRequestSizes } from './rpc.js';
import { listenTls } from './transport.js';
import { ObservedClients, type ClientSighting } from '../../tls/observed-clients.js';
import { watchService } from './watch-service.js';
import { withEncodedResponses } from './wire.js';

export interface StoreServerOptions {
  dbPath: string; // SQLite file (created if missing); ':memory:' not needed
  host?: string; // default '127.0.0.1'
  port?: number; // 0 = pick a free port
  tls: { cert: string; key: string; ca: string; minVersion?: 'TLSv1.2' | 'TLSv1.3' }; // PEM; client certs REQUIRED and verified against ca
  clock?: Clock; // lease expiry reads it
  compaction?: { intervalMs: number; retainRevisions: number }; // periodic automatic compaction; omitted = off
  synchronous?: 'FULL' | 'NORMAL'; // default FULL (see durability)
  clusterId?: string;
  memberName?: string;
}

export interface RunningStore {
  port: number;
  host: string;
  endpoint: string /* https://host:port */;
  /** New serving certificate and client CA bundle (a rotation of the etcd API CA); see TlsListener.setTls. */
  setTls(tls: StoreServerOptions['tls']): Promise<void>;
  /** Which client certificates (user, issuing CA key) connected, when last and from where: for the rotation's gate. */
  observedClients(): Promise<ClientSighting[]>;
  close(): Promise<void>;
}

export function startStoreServer(o: StoreServerOptions): Promise<RunningStore> {
  return startTunedStoreServer(o, {});
}

/** startStoreServer with the timers tests want shorter (lease checks, progress notifications, compaction steps). */
export async function startTunedStoreServer(o: StoreServerOptions, tuning: Partial<Tuning>): Promise<RunningStore> {
  const host = o.host ?? '127.0.0.1';
  const tune = { ...DEFAULT_TUNING, ...tuning };
  const core = new StoreCore({
    dbPath: o.dbPath,
    synchronous: o.synchronous ?? 'FULL',
    clock: o.clock ?? systemClock,
    compaction: o.compaction,
    identity: identityOf(o.clusterId, o.memberName),
    tuning: tune,
  });

  const server = new grpc.Server({
    // As etcd: gRPC reads up to the request limit plus overhead, then etcd's own check answers "request is too large".
    'grpc.max_receive_message_length': MAX_REQUEST_BYTES + GRPC_OVERHEAD_BYTES,
    'grpc.max_send_message_length': -1,
  });
  const pkg = etcdPackageDefinition();
  const service = (name: string) => withEncodedResponses(withRequestSizes(pkg[`etcdserverpb.${name}`] as grpc.ServiceDefinition));
  let clientUrl = '';
  server.addService(service('KV'), kvService(core));
  server.addService(service('Watch'), watchService(core));
  server.addService(service('Lease'), leaseService(core));
  server.addService(service('Maintenance'), maintenanceService(core));
  server.addService(service('Cluster'), clusterService(core, () => clientUrl));
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());

  let listener;
  const observed = new ObservedClients();
  try {
    listener = await listenTls({ host, port: o.port ?? 0 }, o.tls, (socket) => {
      if (tune.rewriteAuthority) admitConnection(socket, (conn) => injector.injectConnection(conn));
      else injector.injectConnection(socket);
    }, undefined, observed);
  } catch (e) {
    server.forceShutdown();
    core.close();
    throw e;
  }
  // A wildcard listen address is no address to dial: advertise loopback then.
  const dialHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  const endpoint = `https://${dialHost.includes(':') ? `[${dialHost}]` : dialHost}:${listener.port}`;
  clientUrl = endpoint;
  core.start();

  let closing: Promise<void> | undefined;
  return {
    port: listener.port,
    host,
    endpoint,
    async setTls(tls) {
      listener.setTls(tls);
    },
    observedClients: async () => observed.list(),
    close() {
      closing ??= (async () => {
        const stopListening = listener.close();
        server.forceShutdown();
        injector.destroy();
        await stopListening;
        core.close();
      })();
      return closing;
    },
  };
}
