// A real cluster for node agent tests: the CA service (soft key store), a store, an API server serving cluster-info with
// certificates from the cluster root CA, and the real CSR controllers (approver, signer) signing through the CA service.
import { request } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import {
  CsrRegistry,
  createBootstrapToken,
  getBootstrapToken,
  startApiServer,
  type CertificateSigningRequest,
  type RunningApiServer,
} from '../../src/apiserver/index.js';
import { localCredential, type LocalCredential } from '../../src/ca/credential.js';
import type { CaClient } from '../../src/ca/client.js';
import { startControllers, type RunningControllers } from '../../src/controllers/index.js';
import { caCertHashOf } from '../../src/fleet/cluster-runtime.js';
import { parseCertificate, parseCertificates, verifyChain } from '../../src/pki/index.js';
import { serverOptions } from '../../src/tls/policy.js';
import type { Clock } from '../../src/util/clock.js';
import { startTestCa, type TestCa } from '../ca/helpers.js';
import { call, startTestCluster, type CallResult, type Credentials, type TestCluster } from '../apiserver/harness.js';

export const CLUSTER = 'alpha';

export interface NodeTestCluster {
  base: TestCluster;
  ca: TestCa;
  api: RunningApiServer;
  /** The cluster root CA bundle (PEM). */
  bundle: string;
  caCertHash: string;
  admin: LocalCredential;
  controllers: RunningControllers;
  /** What cluster-info says about the tunnel server (settable by tests). */
  tunnelServer: string;
  token(o?: { ttlSeconds?: number; nodeName?: string }): Promise<{ token: string; id: string }>;
  tokenInfo(id: string): ReturnType<typeof getBootstrapToken>;
  csrs(): Promise<CertificateSigningRequest[]>;
  call(creds: Credentials, method: string, path: string, o?: { body?: unknown }): Promise<CallResult>;
  /** A certificate from the cluster root CA through the fleet signer (serving, component...). */
  issue(signer: string, subject: Array<{ type: string; value: string }>, sans?: { dns: string[]; ip: string[] }, cluster?: string): Promise<LocalCredential>;
  stop(): Promise<void>;
}

export async function startNodeTestCluster(o: { clock?: Clock; otherClusters?: string[] } = {}): Promise<NodeTestCluster> {
  const base = await startTestCluster({ clock: o.clock });
  const cleanups: Array<() => Promise<unknown> | unknown> = [() => base.stop()];
  const stopAll = async () => {
    for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
  };
  try {
    const ca = await startTestCa({ clock: o.clock });
    cleanups.push(() => ca.stop());
    await ca.fleet.createCluster({ name: CLUSTER });
    for (const other of o.otherClusters ?? []) await ca.fleet.createCluster({ name: other });
    const view = await ca.fleet.describeCluster(CLUSTER);
    const bundle = view.authorities.find((a) => a.kind === 'root')!.bundle;
    const issue: NodeTestCluster['issue'] = (signer, subject, sans, cluster = CLUSTER) =>
      localCredential(subject, (csr) => ca.fleet.sign(cluster, { signer, csr }), { sans });
    const serving = await issue('trustplane.io/kube-apiserver-serving', [{ type: 'CN', value: 'kube-apiserver' }], { dns: ['localhost'], ip: ['127.0.0.1'] });
    const admin = await localCredential([{ type: 'O', value: 'system:masters' }, { type: 'CN', value: 'admin' }], (csr) =>
      ca.fleet.sign(CLUSTER, { signer: 'kubernetes.io/kube-apiserver-client', csr, admin: true }),
    );
    const c: Partial<NodeTestCluster> = { tunnelServer: '' };
    const api = await startApiServer({
      cluster: CLUSTER,
      tls: { cert: serving.cert, key: serving.key },
      clientCa: bundle,
      store: base.store,
      clock: o.clock,
      clusterInfo: () => ({ caBundle: bundle, server: api.url, tunnelServer: c.tunnelServer }),
    });
    cleanups.push(() => api.close());
    const caller: CaClient = await ca.clusterCaller(CLUSTER);
    const controllers = await startControllers({
      cluster: CLUSTER,
      store: base.store,
      ca: { sign: (input) => caller.sign(CLUSTER, { ...input, csr: typeof input.csr === 'string' ? input.csr : input.csr.toString('utf8') }) },
      clock: o.clock,
      tuning: { approverResyncMs: 1000, retryBaseMs: 200, retryMaxMs: 2000 },
    });
    cleanups.push(() => controllers.stop());
    const csrs = new CsrRegistry(base.store);
    return Object.assign(c, {
      base,
      ca,
      api,
      bundle,
      caCertHash: caCertHashOf(view),
      admin,
      controllers,
      token: (t: { ttlSeconds?: number; nodeName?: string } = {}) => createBootstrapToken(base.store, { pool: 'default-pool', ttlSeconds: t.ttlSeconds ?? 3600, nodeName: t.nodeName }, o.clock),
      tokenInfo: (id: string) => getBootstrapToken(base.store, id),
      csrs: async () => (await csrs.list()).items,
      call: (creds: Credentials, method: string, path: string, co: { body?: unknown } = {}) => call({ api, ca: { cert: bundle } as never }, creds, method, path, co),
      issue,
      stop: stopAll,
    }) as NodeTestCluster;
  } catch (e) {
    await stopAll();
    throw e;
  }
}

export interface SeenRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * An HTTPS server in front of the API server that records every request in clear (it terminates TLS) and forwards it:
 * what the node sent, as a server on its path sees it. It presents the certificate it is given (another cluster's...).
 */
export async function startRecordingProxy(target: string, tls: { cert: string; key: string }): Promise<{ url: string; seen: SeenRequest[]; close(): Promise<void> }> {
  const seen: SeenRequest[] = [];
  const t = new URL(target);
  const server: Server = createServer(serverOptions({ cert: tls.cert, key: tls.key, ca: tls.cert, clientCert: 'none' }), (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: body.toString('utf8') });
      const up = request(
        { host: t.hostname, port: t.port, method: req.method, path: req.url, headers: { ...req.headers, host: t.host }, rejectUnauthorized: false, agent: false },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        },
      );
      up.on('error', () => res.destroy());
      up.end(body);
    });
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/**
 * GET on the node endpoint (its loopback listener) with a client certificate. With `verifyAt`, the server's chain is
 * checked by trustplane's verifier at that time (a test clock) instead of by node:tls at the wall clock.
 */
export function endpointGet(
  url: string,
  path: string,
  creds: { cert?: string; key?: string },
  ca: string,
  verifyAt?: Date,
): Promise<{ status: number; text: string; serial?: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(path, url);
    const req = request(
      { host: u.hostname, port: u.port, path: u.pathname + u.search, ca, cert: creds.cert, key: creds.key, agent: false, ...(verifyAt ? { rejectUnauthorized: false } : {}) },
      (res) => {
        const peer = (res.socket as TLSSocket).getPeerCertificate(true);
        if (verifyAt) {
          try {
            const chain: Buffer[] = [];
            for (let p: DetailedPeerCertificate | undefined = peer; p?.raw && !chain.some((d) => d.equals(p!.raw)); p = p.issuerCertificate) chain.push(p.raw);
            const [leaf, ...rest] = chain.map((d) => parseCertificate(d));
            verifyChain(leaf, rest, parseCertificates(ca), { at: verifyAt, purpose: 'serverAuth' });
          } catch (e) {
            req.destroy();
            return reject(e);
          }
        }
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text, serial: peer?.serialNumber?.toLowerCase() }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}
