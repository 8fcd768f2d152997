// mTLS requests per second on kept-alive connections against one API server (embedded store), beside a bare node:https echo server with the same TLS policy.
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Worker } from 'node:worker_threads';
import { serverOptions } from '../src/tls/policy.js';
import { call, csrManifest, startTestCluster, type TestCluster } from '../test/apiserver/harness.js';
import { opensslCsr } from '../test/helpers/openssl.js';
import { result, type Benchmark, type BenchResult } from './lib.js';

const CONNECTIONS = 32;
const SECONDS = 4;
const WARMUP_SECONDS = 1;

/**
 * The load runs in a worker thread, so that the server's thread does only the server's work: CONNECTIONS workers, each
 * sending GETs one after another on its own kept-alive mTLS connection, for `seconds`.
 */
const LOAD = `
const { parentPort, workerData: w } = require('node:worker_threads');
const https = require('node:https');
const agent = new https.Agent({ keepAlive: true, maxSockets: w.connections, ca: w.ca, cert: w.cert, key: w.key });
function get() {
  return new Promise((resolve, reject) => {
    const req = https.request(w.url, { agent, headers: { Accept: 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error('HTTP ' + res.statusCode))));
    });
    req.on('error', reject);
    req.end();
  });
}
async function phase(seconds) {
  let n = 0;
  const until = Date.now() + seconds * 1000;
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: w.connections }, async () => { while (Date.now() < until) { await get(); n++; } }));
  return n / (Number(process.hrtime.bigint() - t0) / 1e9);
}
(async () => {
  await phase(w.warmup);
  const rate = await phase(w.seconds);
  agent.destroy();
  parentPort.postMessage(rate);
})().catch((e) => { parentPort.postMessage({ error: String(e && e.stack || e) }); });
`;

function load(url: string, tls: { ca: string; cert: string; key: string }): Promise<number> {
  return new Promise((resolve, reject) => {
    const w = new Worker(LOAD, { eval: true, workerData: { url, ...tls, connections: CONNECTIONS, seconds: SECONDS, warmup: WARMUP_SECONDS } });
    w.once('message', (m: number | { error: string }) => {
      void w.terminate();
      if (typeof m === 'number') resolve(m);
      else reject(new Error(m.error));
    });
    w.once('error', reject);
  });
}

/** The anchor: node:https with the same TLS settings (client certificate requested), answering a fixed JSON body. */
async function echoRate(c: TestCluster, serving: { cert: string; key: string }): Promise<number> {
  const body = JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', code: 200 });
  const server = createServer(serverOptions({ cert: serving.cert, key: serving.key, ca: c.ca.cert, clientCert: 'request' }), (_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = (server.address() as AddressInfo).port;
    return await load(`https://127.0.0.1:${port}/`, { ca: c.ca.cert, cert: c.admin.cert, key: c.admin.key });
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
}

const bench: Benchmark = {
  names: ['apiserver.mtls_requests.per_s'],
  async run(): Promise<BenchResult[]> {
    const c = await startTestCluster();
    try {
      const pem = opensslCsr(c.dir, 'bench', { subj: '/CN=system:node:bench/O=system:nodes' });
      const path = '/apis/certificates.k8s.io/v1/certificatesigningrequests/bench';
      const created = await call(c, c.admin, 'POST', '/apis/certificates.k8s.io/v1/certificatesigningrequests', { body: csrManifest('bench', pem) });
      if (created.status !== 201) throw new Error(`cannot create the benchmark CSR: ${created.text}`);
      const serving = c.ca.issue('bench-echo', { cn: 'echo', sans: ['IP:127.0.0.1'], eku: ['serverAuth'] });
      const creds = { ca: c.ca.cert, cert: c.admin.cert, key: c.admin.key };
      const api = await load(`${c.api.url}${path}`, creds);
      // The same requests without the store read: what authentication, routing and TLS cost on their own.
      const version = await load(`${c.api.url}/version`, creds);
      const echo = await echoRate(c, serving);
      return [
        result('apiserver.mtls_requests.per_s', api, 'requests/s', 'bare node:https echo server, same TLS policy, same client, same run', echo, {
          connections: CONNECTIONS,
          seconds: SECONDS,
          request: 'GET one CSR (authn by client cert, authz, store read, JSON)',
          tls: 'TLS 1.3 (policy default), client certificate requested',
          load: 'node:https keep-alive agent in a worker thread',
          version_requests_per_s: Math.round(version),
          version_ratio: Math.round((version / echo) * 1000) / 1000,
          note: 'GET /version passes the same authentication and routing without a store read; the embedded store runs in the same process',
        }),
      ];
    } finally {
      await c.stop();
    }
  },
};

export default bench;
