// A CA service for tests: the real process wiring on a temp data dir, with fleet and cluster callers.
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { CaClient } from '../../src/ca/client.js';
import { runCaProcess, type RunningCa, type StoredKeyStoreConfig } from '../../src/ca/process.js';
import { buildCsr, generateKeyPair, pemEncode } from '../../src/pki/index.js';
import type { Clock } from '../../src/util/clock.js';
import { caPaths } from '../../src/util/datadir.js';
import { tempDir } from '../helpers/tmp.js';
import { killChild, tpSpawn } from '../helpers/cli.js';
import { waitFor } from '../../src/util/wait.js';

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

/** The CA service as a real child process (`trustplane ca serve`), for tests that also run the CLI synchronously. */
export interface CaChild {
  dataDir: string;
  child: ChildProcess;
  output(): string;
  paths: ReturnType<typeof caPaths>;
  /** A fleet client (the local administrator's credential from the data dir). */
  fleet(): CaClient;
  /** Stop it: SIGTERM (clean) or SIGKILL (crash). */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export async function startCaChild(dataDir: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<CaChild> {
  const proc = tpSpawn(['ca', 'serve', '--data-dir', dataDir, ...args], env);
  const paths = caPaths(dataDir);
  const clients: CaClient[] = [];
  try {
    await waitFor('the CA service to write its endpoint', () => {
      if (proc.child.exitCode !== null) throw new Error(`CA service exited: ${proc.output()}`);
      return existsSync(paths.endpoint) && (JSON.parse(readFileSync(paths.endpoint, 'utf8')) as { pid: number }).pid === proc.child.pid ? true : undefined;
    }, 30000);
  } catch (e) {
    await killChild(proc.child);
    throw e;
  }
  return {
    dataDir,
    child: proc.child,
    output: proc.output,
    paths,
    fleet() {
      const url = (JSON.parse(readFileSync(paths.endpoint, 'utf8')) as { url: string }).url;
      const c = new CaClient({ url, cert: readFileSync(paths.fleetCert, 'utf8'), key: readFileSync(paths.fleetKey, 'utf8'), ca: readFileSync(paths.serviceCa, 'utf8') });
      clients.push(c);
      return c;
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      for (const c of clients) c.close();
      await killChild(proc.child, signal);
    },
  };
}
