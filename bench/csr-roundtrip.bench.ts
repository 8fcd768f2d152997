// CSR create -> approve -> issued round trips per second with 64 concurrent bootstrap clients, against a real control
// plane (CA service and host as their own processes); beside the CA service's raw issuance rate and a bare TLS echo server.
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Worker } from 'node:worker_threads';
import { localCredential } from '../src/ca/credential.js';
import { buildCsr, generateKeyPair, pemEncode } from '../src/pki/index.js';
import { serverOptions } from '../src/tls/policy.js';
import { startControlPlane } from '../test/helpers/control-plane.js';
import { tempDir } from '../test/helpers/tmp.js';
import { cpuMs, result, type Benchmark, type BenchResult } from './lib.js';

const CLIENTS = 64;
const SECONDS = 6;
const WARMUP_SECONDS = 1.5;

/**
 * One bootstrap client, as a kubelet does it: POST its CSR with the token, then watch that CSR (fieldSelector on its
 * name, from the create's resourceVersion) until status.certificate arrives. CSRs are made before the clock starts.
 */
const LOAD = `
const { parentPort, workerData: w } = require('node:worker_threads');
const https = require('node:https');
const agent = new https.Agent({ keepAlive: true, maxSockets: w.clients * 2, ca: w.ca });
const auth = 'Bearer ' + w.token;
const base = w.url + '/apis/certificates.k8s.io/v1/certificatesigningrequests';
function post(body) {
  return new Promise((resolve, reject) => {
    const req = https.request(base, { method: 'POST', agent, headers: { Authorization: auth, 'Content-Type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => (res.statusCode === 201 ? resolve(JSON.parse(text)) : reject(new Error('create: HTTP ' + res.statusCode + ' ' + text))));
    });
    req.on('error', reject);
    req.end(body);
  });
}
function waitIssued(name, rv) {
  return new Promise((resolve, reject) => {
    const url = base + '?watch=true&fieldSelector=' + encodeURIComponent('metadata.name=' + name) + '&resourceVersion=' + rv + '&timeoutSeconds=60';
    const req = https.request(url, { agent, headers: { Authorization: auth } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error('watch: HTTP ' + res.statusCode));
      let buf = '';
      res.on('data', (d) => {
        buf += d;
        let i;
        while ((i = buf.indexOf('\\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          const ev = JSON.parse(line);
          const st = ev.object && ev.object.status;
          if (st && st.certificate) { req.destroy(); return resolve(); }
          if (st && st.conditions && st.conditions.some((c) => c.type === 'Denied' || c.type === 'Failed')) { req.destroy(); return reject(new Error('CSR ' + name + ' refused: ' + JSON.stringify(st.conditions))); }
        }
      });
      res.on('end', () => reject(new Error('watch ended before ' + name + ' was issued')));
    });
    req.on('error', (e) => { if (!req.destroyed || e.code !== 'ECONNRESET') reject(e); });
    req.end();
  });
}
let next = 0;
async function roundTrip() {
  const i = next++;
  if (i >= w.csrs.length) throw new Error('ran out of prepared CSRs');
  const name = 'bench-' + w.run + '-' + i;
  const body = JSON.stringify({ apiVersion: 'certificates.k8s.io/v1', kind: 'CertificateSigningRequest', metadata: { name },
    spec: { request: w.csrs[i], signerName: 'kubernetes.io/kube-apiserver-client-kubelet', usages: ['digital signature', 'client auth'] } });
  const created = await post(body);
  await waitIssued(name, created.metadata.resourceVersion);
}
async function phase(seconds) {
  let n = 0;
  const until = Date.now() + seconds * 1000;
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: w.clients }, async () => { while (Date.now() < until) { await roundTrip(); n++; } }));
  return { rate: n / (Number(process.hrtime.bigint() - t0) / 1e9), n };
}
(async () => {
  await phase(w.warmup);
  parentPort.postMessage({ timing: 'start' });
  const r = await phase(w.seconds);
  parentPort.postMessage({ timing: 'end' });
  agent.destroy();
  parentPort.postMessage(r);
})().catch((e) => { parentPort.postMessage({ error: String(e && e.stack || e) }); });
`;

/** CPU time (user + system, ms) a process has used so far; undefined where there is no /proc. */
function cpuMsOf(pid: number | undefined): number | undefined {
  try {
    return pid === undefined ? undefined : cpuMs(pid);
  } catch {
    return undefined;
  }
}

/** The round trips, and the host's CPU time over the timed phase (not the warm-up). */
function load(workerData: Record<string, unknown>, hostPid: number | undefined): Promise<{ rate: number; n: number; hostCpuMs?: number }> {
  return new Promise((resolve, reject) => {
    const w = new Worker(LOAD, { eval: true, workerData });
    let cpuAtStart: number | undefined;
    let hostCpuMs: number | undefined;
    w.on('message', (m: { rate: number; n: number } | { error: string } | { timing: 'start' | 'end' }) => {
      if ('timing' in m) {
        if (m.timing === 'start') cpuAtStart = cpuMsOf(hostPid);
        else {
          const end = cpuMsOf(hostPid);
          hostCpuMs = end !== undefined && cpuAtStart !== undefined ? end - cpuAtStart : undefined;
        }
        return;
      }
      void w.terminate();
      if ('error' in m) reject(new Error(m.error));
      else resolve({ ...m, hostCpuMs });
    });
    w.once('error', reject);
  });
}

/** The same client shape (keep-alive node:https, 64 in flight) against node:https answering a fixed body. */
const ECHO = `
const { parentPort, workerData: w } = require('node:worker_threads');
const https = require('node:https');
const agent = new https.Agent({ keepAlive: true, maxSockets: w.clients, ca: w.ca });
function get() {
  return new Promise((resolve, reject) => {
    const req = https.request(w.url, { agent }, (res) => { res.resume(); res.on('end', resolve); });
    req.on('error', reject);
    req.end();
  });
}
(async () => {
  const until = Date.now() + w.seconds * 1000;
  let n = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: w.clients }, async () => { while (Date.now() < until) { await get(); n++; } }));
  agent.destroy();
  parentPort.postMessage({ rate: n / (Number(process.hrtime.bigint() - t0) / 1e9), n });
})().catch((e) => parentPort.postMessage({ error: String(e) }));
`;

async function echoRate(serving: { cert: string; key: string; ca: string }): Promise<number> {
  const server = createServer(serverOptions({ cert: serving.cert, key: serving.key, ca: serving.ca, clientCert: 'request' }), (_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': 2 });
    res.end('{}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const r = await new Promise<{ rate: number }>((resolve, reject) => {
      const w = new Worker(ECHO, { eval: true, workerData: { url, ca: serving.ca, clients: CLIENTS, seconds: 3 } });
      w.once('message', (m: { rate: number } | { error: string }) => {
        void w.terminate();
        if ('error' in m) reject(new Error(m.error));
        else resolve(m);
      });
      w.once('error', reject);
    });
    return r.rate;
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
}

async function prepareCsrs(count: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const kp = await generateKeyPair({ kind: 'ec', curve: 'P-256' });
    const der = await buildCsr({ subject: [{ type: 'O', value: 'system:nodes' }, { type: 'CN', value: `system:node:bench-${i}` }], signer: kp.signer });
    out.push(Buffer.from(pemEncode('CERTIFICATE REQUEST', der)).toString('base64'));
  }
  return out;
}

const bench: Benchmark = {
  names: ['apiserver.csr_roundtrip.per_s'],
  async run(): Promise<BenchResult[]> {
    const tmp = tempDir('tp-bench-csr-');
    const cp = await startControlPlane(`${tmp.path}/data`);
    try {
      const fleet = cp.fleet();
      const cluster = await fleet.create({ name: 'bench' });
      const bundle = cluster.authorities.find((a) => a.kind === 'root')!.bundle;
      const token = await fleet.bootstrapToken('bench', 'default-pool', { ttlSeconds: 3600 });
      const csrs = await prepareCsrs(12_000);
      const rt = await load({ url: cluster.endpoint, ca: bundle, token: token.token, csrs, clients: CLIENTS, seconds: SECONDS, warmup: WARMUP_SECONDS, run: 'r' }, cp.host.child.pid);

      // The CA service's raw issuance rate, same process, same run: sign-batch of kubelet-client CSRs as a cluster caller.
      const ca = cp.ca.fleet();
      const batch = csrs.slice(0, 500).map((b64) => ({ signer: 'kubernetes.io/kube-apiserver-client-kubelet', csr: Buffer.from(b64, 'base64').toString('utf8') }));
      const raw = await (async () => {
        const t0 = process.hrtime.bigint();
        let n = 0;
        const until = Date.now() + 3000;
        while (Date.now() < until) {
          await Promise.all([0, 1, 2, 3].map(() => ca.signBatch('bench', batch.slice(0, 125))));
          n += 500;
        }
        return n / (Number(process.hrtime.bigint() - t0) / 1e9);
      })();
      const serving = await localCredential([{ type: 'CN', value: 'echo' }], (csr) => ca.sign('bench', { signer: 'trustplane.io/kube-apiserver-serving', csr }), { sans: { ip: ['127.0.0.1'] } });
      const echo = await echoRate({ cert: serving.cert, key: serving.key, ca: bundle });
      return [
        result('apiserver.csr_roundtrip.per_s', rt.rate, 'csrs/s', "CA service's raw issuance rate (sign-batch, same run)", raw, {
          clients: CLIENTS,
          seconds: SECONDS,
          round_trips: rt.n,
          // The goal is a few ms of control plane CPU per CSR; on a shared machine this moves less than the rate does.
          host_cpu_ms_per_csr: rt.hostCpuMs === undefined ? null : Math.round((rt.hostCpuMs / rt.n) * 100) / 100,
          flow: 'bootstrap token POST CSR -> approver (store) -> signer -> CA service (mTLS) -> status.certificate -> client watch sees it',
          processes: 'CA service and control plane host are separate processes (embedded store in the host); clients in a worker thread of the bench process',
          echo_requests_per_s: Math.round(echo),
          echo_ratio: Math.round((rt.rate / echo) * 1000) / 1000,
          echo_anchor: 'bare node:https server, same TLS policy and client shape, one request per round trip',
        }),
      ];
    } finally {
      await cp.stop();
      tmp.remove();
    }
  },
};

export default bench;
