// Where a local control plane keeps its state: one data directory, laid out here and nowhere else.
import { resolve, join } from 'node:path';

export function defaultDataDir(): string {
  return resolve(process.env.TRUSTPLANE_DATA_DIR || './.trustplane');
}

export function caPaths(dataDir: string) {
  const dir = join(dataDir, 'ca');
  return {
    dir,
    config: join(dir, 'config.json'),
    state: join(dir, 'state.json'),
    audit: join(dir, 'audit.log'),
    keystore: join(dir, 'keystore'),
    endpoint: join(dir, 'endpoint.json'),
    pid: join(dir, 'ca.pid'),
    log: join(dir, 'ca.log'),
    /** The local fleet administrator's credential for the CA service (like kubeadm's admin.conf). */
    fleetCert: join(dir, 'fleet', 'client.crt'),
    fleetKey: join(dir, 'fleet', 'client.key'),
    serviceCa: join(dir, 'fleet', 'service-ca.crt'),
  };
}

export function clusterPaths(dataDir: string, cluster: string) {
  const dir = join(dataDir, 'clusters', cluster);
  return {
    dir,
    storeDir: join(dir, 'store'),
    storeDb: join(dir, 'store', 'state.db'),
    storeEndpoint: join(dir, 'store', 'endpoint.json'),
    storePid: join(dir, 'store', 'store.pid'),
    storeLog: join(dir, 'store', 'store.log'),
    /** The host's record of the cluster: its store backend, API server port, lifecycle state. */
    config: join(dir, 'cluster.json'),
    /** The admin kubeconfig `trustplane up` writes; `get-credentials` writes elsewhere. */
    adminKubeconfig: join(dir, 'admin.kubeconfig'),
  };
}

export function hostPaths(dataDir: string) {
  const dir = join(dataDir, 'host');
  return {
    dir,
    endpoint: join(dir, 'endpoint.json'),
    pid: join(dir, 'host.pid'),
    log: join(dir, 'host.log'),
    /** The bearer token that lets a scraper read /metrics (0600; made at the host's first start). */
    metricsToken: join(dir, 'metrics-token'),
    /** The web console's port, chosen at its first start and kept so that a bookmark works after a restart. */
    consolePort: join(dir, 'console-port'),
    clustersDir: join(dataDir, 'clusters'),
  };
}
