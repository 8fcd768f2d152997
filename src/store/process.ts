// Wires one cluster's embedded state store: a serving certificate from the cluster's etcd API CA, then the etcd v3 server.
import { mkdirSync, rmSync } from 'node:fs';
import type { CaClient } from '../ca/client.js';
import { localCredential } from '../ca/credential.js';
import type { MinVersion } from '../tls/policy.js';
import { clusterPaths } from '../util/datadir.js';
import { claimPidFile } from '../util/pidfile.js';
import { SIGNER_ETCD_SERVER } from '../pki/signer-names.js';
import { writeFileAtomic } from '../util/files.js';
import { startStoreServer } from './server/index.js';
import { startStoreServerThread } from './server-thread.js';
import type { ClientSighting } from '../tls/observed-clients.js';

/** As `trustplane store serve`'s defaults: keep the last 10,000 revisions, look every 5 minutes. */
export const DEFAULT_COMPACTION = { intervalMs: 5 * 60_000, retainRevisions: 10_000 };

export interface StoreProcessOptions {
  dataDir: string;
  cluster: string;
  ca: CaClient;
  host?: string;
  port?: number;
  minVersion?: MinVersion;
  /** Default DEFAULT_COMPACTION; retainRevisions 0 turns it off. */
  compaction?: { intervalMs: number; retainRevisions: number };
  synchronous?: 'FULL' | 'NORMAL';
  /** Serve from a worker thread (the host, where this process has other work); else on this thread. */
  thread?: boolean;
}

export interface StoreEndpoint {
  url: string;
  pid: number;
  cluster: string;
}

export interface RunningStoreProcess {
  url: string;
  /** After a step of an etcd API CA rotation: a serving certificate from the active generation, and its current bundle. */
  reloadTls(): Promise<void>;
  /** The store's record of the client certificates it saw (see tls/observed-clients.ts). */
  observedClients(): Promise<ClientSighting[]>;
  stop(): Promise<void>;
}

/** The store's TLS: a serving certificate and the client trust bundle, both from the cluster's etcd API CA. */
export async function storeServingTls(ca: CaClient, cluster: string, host: string) {
  const view = await ca.describeCluster(cluster);
  const apiCa = view.authorities.find((a) => a.kind === 'etcd-api')!;
  const ips = [...new Set(['127.0.0.1', '::1', ...(/^[\d.]+$|:/.test(host) ? [host] : [])])];
  const cred = await localCredential(
    [{ type: 'CN', value: `${cluster}-store` }],
    (csr) => ca.sign(cluster, { signer: SIGNER_ETCD_SERVER, csr }),
    { sans: { dns: ['localhost'], ip: ips } },
  );
  return { cert: cred.cert, key: cred.key, ca: apiCa.bundle };
}

export async function runStoreProcess(o: StoreProcessOptions): Promise<RunningStoreProcess> {
  const p = clusterPaths(o.dataDir, o.cluster);
  mkdirSync(p.storeDir, { recursive: true, mode: 0o700 });
  const release = claimPidFile(p.storePid, `the state store of cluster "${o.cluster}"`);
  const host = o.host ?? '127.0.0.1';
  const tls = await storeServingTls(o.ca, o.cluster, host);
  const store = await (o.thread ? startStoreServerThread : startStoreServer)({
    dbPath: p.storeDb,
    host,
    port: o.port ?? 0,
    tls: { ...tls, minVersion: o.minVersion },
    compaction: o.compaction ?? DEFAULT_COMPACTION,
    synchronous: o.synchronous,
    clusterId: o.cluster,
    memberName: `${o.cluster}-store`,
  });
  const endpoint: StoreEndpoint = { url: store.endpoint, pid: process.pid, cluster: o.cluster };
  writeFileAtomic(p.storeEndpoint, JSON.stringify(endpoint, null, 2) + '\n');
  return {
    url: store.endpoint,
    observedClients: () => store.observedClients(),
    async reloadTls() {
      const next = await storeServingTls(o.ca, o.cluster, host);
      await store.setTls({ ...next, minVersion: o.minVersion });
    },
    async stop() {
      await store.close();
      rmSync(p.storeEndpoint, { force: true });
      release();
    },
  };
}
