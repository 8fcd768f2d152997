// A CA service for tests: the real process wiring on a temp data dir, with fleet and cluster callers.
import { readFileSync } from 'node:fs';
import { CaClient } from '../../src/ca/client.js';
import { runCaProcess, type RunningCa, type StoredKeyStoreConfig } from '../../src/ca/process.js';
import { buildCsr, generateKeyPair, pemEncode } from '../../src/pki/index.js';
import type { Clock } from '../../src/util/clock.js';
import { caPaths } from '../../src/util/datadir.js';
import { tempDir } from '../helpers/tmp.js';

export interface TestCa {
  dataDir: string;
  running: RunningCa;
  fleet: CaClient;
  paths: ReturnType<typeof caPaths>;
  /** A client holding a caller credential bound to one cluster. */
  clusterCaller(cluster: string): Promise<CaClient>;
  auditLines(): Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

export async function startTestCa(o: { keystore?: StoredKeyStoreConfig; clock?: Clock; dataDir?: string } = {}): Promise<TestCa> {
  const tmp = o.dataDir ? undefined : tempDir('tp-ca-');
  const dataDir = o.dataDir ?? tmp!.path;
  const running = await runCaProcess({ dataDir, keystore: o.keystore, clock: o.clock });
  const paths = caPaths(dataDir);
  const serviceCa = readFileSync(paths.serviceCa, 'utf8');
  const fleet = new CaClient({ url: running.url, cert: readFileSync(paths.fleetCert, 'utf8'), key: readFileSync(paths.fleetKey, 'utf8'), ca: serviceCa });
  const clients: CaClient[] = [fleet];
  return {
    dataDir,
    running,
    fleet,
    paths,
    async clusterCaller(cluster) {
      const kp = await generateKeyPair({ kind: 'ec', curve: 'P-256' });
      const csr = pemEncode('CERTIFICATE REQUEST', await buildCsr({ subject: [{ type: 'CN', value: 'x' }], signer: kp.signer }));
      const issued = await fleet.issueClusterCaller(cluster, csr);
      const c = new CaClient({ url: running.url, cert: issued.certificate, key: kp.privateKeyPem, ca: serviceCa });
      clients.push(c);
      return c;
    },
    auditLines() {
      return readFileSync(paths.audit, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    },
    async stop() {
      for (const c of clients) c.close();
      await running.stop();
      tmp?.remove();
    },
  };
}
