// The two stores every store test runs against: a real 1-member etcd (the ground truth) and trustplane's embedded server.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { startStoreServer } from '../../../src/store/server/index.js';
import { startEtcdCluster } from '../../helpers/etcd-cluster.js';
import { makeOpensslCa } from '../../helpers/openssl-certs.js';
import { tempDir } from '../../helpers/tmp.js';

export interface StoreTarget {
  name: string;
  endpoints: string[];
  /** Client material: a client certificate the store accepts, and the CA that verifies the store. */
  tls: { cert: string; key: string; ca: string };
  stop(): Promise<void>;
}

export async function startEtcdTarget(): Promise<StoreTarget> {
  const c = await startEtcdCluster({ members: 1 });
  return { name: 'etcd 3.4', endpoints: c.endpoints, tls: c.tls, stop: () => c.stop() };
}

export interface EmbeddedTargetOptions {
  synchronous?: 'FULL' | 'NORMAL';
}

/** trustplane's embedded store on a fresh database, with openssl-made certificates. */
export async function startEmbeddedTarget(o: EmbeddedTargetOptions = {}): Promise<StoreTarget> {
  const ca = makeOpensslCa('store test CA');
  const server = ca.issue('store-server', { cn: 'trustplane-store', sans: ['IP:127.0.0.1', 'DNS:localhost'], eku: ['serverAuth'] });
  const client = ca.issue('store-client', { cn: 'trustplane-test', eku: ['clientAuth'] });
  const dir = tempDir('tp-store-');
  const s = await startStoreServer({
    dbPath: join(dir.path, 'store.db'),
    host: '127.0.0.1',
    port: 0,
    tls: { cert: server.cert, key: server.key, ca: ca.cert },
    synchronous: o.synchronous,
  });
  return {
    name: 'embedded',
    endpoints: [s.endpoint.startsWith('https://') ? s.endpoint : `https://${s.host}:${s.port}`],
    tls: { cert: client.cert, key: client.key, ca: ca.cert },
    async stop() {
      await s.close();
      dir.remove();
      rmSync(ca.dir, { recursive: true, force: true });
    },
  };
}
