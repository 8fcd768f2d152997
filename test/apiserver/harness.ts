// A real API server over TLS on an embedded store, with openssl-made certificates, and the real kubectl pointed at it.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { startApiServer, type ApiServerOptions, type RunningApiServer } from '../../src/apiserver/index.js';
import { openStore, type Store } from '../../src/store/client.js';
import { startStoreServer, type RunningStore } from '../../src/store/server/index.js';
import type { Clock } from '../../src/util/clock.js';
import { makeOpensslCa, type OpensslCa, type PemPair } from '../helpers/openssl-certs.js';
import { tempDir } from '../helpers/tmp.js';

export const KUBECTL = '/usr/bin/kubectl';

export interface Credentials {
  cert?: string;
  key?: string;
  token?: string;
}

export interface KubectlResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export interface TestCluster {
  dir: string;
  ca: OpensslCa;
  api: RunningApiServer;
  store: Store;
  admin: PemPair;
  /** A client certificate for system:node:<name> in system:nodes. */
  node(name: string): PemPair;
  /** A client certificate with any CN and O. */
  user(cn: string, o?: string): PemPair;
  /** Writes a kubeconfig for these credentials; returns its path. */
  kubeconfig(c: Credentials, name?: string): string;
  /** Runs kubectl with a fresh cache dir; the child is killed by PID after timeoutMs. */
  kubectl(kubeconfig: string, args: string[], o?: { input?: string; timeoutMs?: number }): Promise<KubectlResult>;
  stop(): Promise<void>;
}

let seq = 0;

/** Runs kubectl (`binary`, default /usr/bin/kubectl) with this kubeconfig and cache dir; killed by PID after timeoutMs. */
export function runKubectl(kubeconfig: string, args: string[], o: { input?: string; timeoutMs?: number; cacheDir: string; binary?: string }): Promise<KubectlResult> {
  return runCommand(o.binary ?? KUBECTL, ['--kubeconfig', kubeconfig, '--cache-dir', o.cacheDir, ...args], { input: o.input, timeoutMs: o.timeoutMs, env: { HOME: o.cacheDir } });
}

/** Runs any command with `input` on its stdin and `env` over this process's; killed by PID after timeoutMs (default 30 s). */
export function runCommand(cmd: string, args: string[], o: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv; onSpawnError?: string } = {}): Promise<KubectlResult> {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...o.env } });
  if (o.onSpawnError) {
    const hint = o.onSpawnError;
    child.on('error', (e) => child.stderr!.emit('data', `${hint}: ${e.message}`));
  }
  return collect(child, o.input, o.timeoutMs ?? 30_000);
}

function collect(child: ChildProcess, input: string | undefined, timeoutMs: number): Promise<KubectlResult> {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  child.stdin!.end(input ?? '');
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

export async function startTestCluster(
  o: { clock?: Clock; maxBodyBytes?: number; minVersion?: ApiServerOptions['tls']['minVersion']; compaction?: { intervalMs: number; retainRevisions: number } } = {},
): Promise<TestCluster> {
  const tmp = tempDir('tp-api-');
  const dir = tmp.path;
  const storeCa = makeOpensslCa('store CA', mkdtempSync(join(dir, 'store-ca-')));
  const storeServerCert = storeCa.issue('store-server', { cn: 'store', sans: ['IP:127.0.0.1'], eku: ['serverAuth'] });
  const storeClient = storeCa.issue('apiserver-store-client', { cn: 'apiserver', eku: ['clientAuth'] });
  let storeServer: RunningStore | undefined;
  let store: Store | undefined;
  try {
    storeServer = await startStoreServer({
      dbPath: join(dir, 'state.db'),
      tls: { cert: storeServerCert.cert, key: storeServerCert.key, ca: storeCa.cert },
      synchronous: 'NORMAL',
      compaction: o.compaction,
    });
    store = await openStore({ endpoints: [storeServer.endpoint], tls: { cert: storeClient.cert, key: storeClient.key, ca: storeCa.cert } });
    const ca = makeOpensslCa('cluster root CA', mkdtempSync(join(dir, 'root-ca-')));
    const serving = ca.issue('apiserver', { cn: 'kube-apiserver', sans: ['IP:127.0.0.1', 'DNS:localhost'], eku: ['serverAuth'] });
    const admin = ca.issue('admin', { cn: 'admin', o: 'system:masters', eku: ['clientAuth'] });
    const api = await startApiServer({
      cluster: 'test',
      tls: { cert: serving.cert, key: serving.key, minVersion: o.minVersion },
      clientCa: ca.cert,
      store,
      clock: o.clock,
      maxBodyBytes: o.maxBodyBytes,
    });
    const s = store;
    const ss = storeServer;
    return {
      dir,
      ca,
      api,
      store: s,
      admin,
      node: (name) => ca.issue(`node-${name}-${seq++}`, { cn: `system:node:${name}`, o: 'system:nodes', eku: ['clientAuth'] }),
      user: (cn, org) => ca.issue(`user-${seq++}`, { cn, o: org, eku: ['clientAuth'] }),
      kubeconfig(c, name = `kc-${seq++}`) {
        const path = join(dir, `${name}.yaml`);
        const b64 = (s: string) => Buffer.from(s).toString('base64');
        const user = c.token ? { token: c.token } : { 'client-certificate-data': b64(c.cert!), 'client-key-data': b64(c.key!) };
        const cfg = {
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [{ name: 'test', cluster: { server: api.url, 'certificate-authority-data': b64(ca.cert) } }],
          users: [{ name: 'u', user }],
          contexts: [{ name: 'test', context: { cluster: 'test', user: 'u' } }],
          'current-context': 'test',
        };
        writeFileSync(path, JSON.stringify(cfg));
        return path;
      },
      kubectl(kubeconfig, args, ko = {}) {
        const cacheDir = mkdtempSync(join(dir, 'kcache-'));
        return runKubectl(kubeconfig, args, { ...ko, cacheDir });
      },
      async stop() {
        await api.close();
        await s.close();
        await ss.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await store?.close();
    await storeServer?.close();
    tmp.remove();
    throw e;
  }
}

export interface CallResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** One HTTPS request to the API server with these credentials (a fresh connection each time). */
export function call(
  c: Pick<TestCluster, 'api' | 'ca'>,
  creds: Credentials,
  method: string,
  path: string,
  o: { body?: unknown; contentType?: string; headers?: Record<string, string>; ca?: string } = {},
): Promise<CallResult> {
  const body = o.body === undefined ? undefined : Buffer.isBuffer(o.body) ? o.body : Buffer.from(typeof o.body === 'string' ? o.body : JSON.stringify(o.body));
  const url = new URL(path, c.api.url);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        method,
        host: url.hostname,
        port: url.port,
        path: url.pathname + url.search,
        ca: o.ca ?? c.ca.cert,
        cert: creds.cert,
        key: creds.key,
        agent: false,
        headers: {
          Accept: 'application/json',
          ...(body ? { 'Content-Type': o.contentType ?? 'application/json', 'Content-Length': String(body.length) } : {}),
          ...(creds.token ? { Authorization: `Bearer ${creds.token}` } : {}),
          ...o.headers,
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** A CSR manifest (JSON, which kubectl reads with -f) for a PEM request. */
export function csrManifest(name: string, pem: string, o: { signerName?: string; usages?: string[]; expirationSeconds?: number; extraSpec?: Record<string, unknown> } = {}) {
  return {
    apiVersion: 'certificates.k8s.io/v1',
    kind: 'CertificateSigningRequest',
    metadata: { name },
    spec: {
      request: Buffer.from(pem).toString('base64'),
      signerName: o.signerName ?? 'kubernetes.io/kube-apiserver-client-kubelet',
      usages: o.usages ?? ['digital signature', 'client auth'],
      ...(o.expirationSeconds ? { expirationSeconds: o.expirationSeconds } : {}),
      ...o.extraSpec,
    },
  };
}

/** Writes a file in the cluster's directory; returns its path. */
export function writeIn(c: Pick<TestCluster, 'dir'>, name: string, content: unknown): string {
  const p = join(c.dir, name);
  writeFileSync(p, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return p;
}
