// HTTP/2 beside HTTP/1.1 on the API server's port: a Go-like h2 client runs a watch and concurrent GETs on one connection,
// kubectl negotiates h2, and HTTP/1.1 clients (node's https, curl --http1.1, openssl s_client) are served as before.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http2 from 'node:http2';
import { Agent } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { startApiServer, type RunningApiServer } from '../../src/apiserver/index.js';
import { startNodeEndpoint, type NodeEndpoint } from '../../src/node/endpoint.js';
import { waitFor } from '../../src/util/wait.js';
import { opensslCsr } from '../helpers/openssl.js';
import { call, csrManifest, runCommand, startTestCluster, writeIn, type TestCluster } from './harness.js';

interface H2Answer {
  status: number;
  headers: http2.IncomingHttpHeaders;
  text: string;
}

function h2(session: http2.ClientHttp2Session, method: string, path: string, body?: unknown): Promise<H2Answer> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = session.request({ ':method': method, ':path': path, accept: 'application/json', ...(data ? { 'content-type': 'application/json' } : {}) });
    let headers: http2.IncomingHttpHeaders = {};
    let text = '';
    req.setEncoding('utf8');
    req.on('response', (h) => (headers = h));
    req.on('data', (d: string) => (text += d));
    req.on('end', () => resolve({ status: Number(headers[':status']), headers, text }));
    req.on('error', reject);
    req.end(data);
  });
}

const run = (cmd: string, args: string[], timeoutMs = 20_000) => runCommand(cmd, args, { timeoutMs });

describe('API server: HTTP/2 and HTTP/1.1 on one port', () => {
  let c: TestCluster;
  before(async () => {
    c = await startTestCluster();
  });
  after(async () => {
    await c?.stop();
  });

  test('one h2 connection with a client certificate carries a watch and concurrent GETs', async () => {
    const sessionsBefore = c.api.connectionStats().h2Sessions;
    const session = http2.connect(c.api.url, { ca: c.ca.cert, cert: c.admin.cert, key: c.admin.key, servername: 'localhost' });
    session.on('error', () => undefined);
    try {
      await new Promise((r) => session.once('connect', r));
      assert.equal(session.alpnProtocol, 'h2');
      const list = await h2(session, 'GET', '/apis/certificates.k8s.io/v1/certificatesigningrequests');
      assert.equal(list.status, 200, list.text);
      const rv = JSON.parse(list.text).metadata.resourceVersion as string;

      // The watch: a streamed response, no HTTP/1.1 connection headers.
      const watch = session.request({ ':method': 'GET', ':path': `/apis/certificates.k8s.io/v1/certificatesigningrequests?watch=true&resourceVersion=${rv}`, accept: 'application/json' });
      watch.setEncoding('utf8');
      let watchText = '';
      watch.on('data', (d: string) => (watchText += d));
      const watchHeaders = await new Promise<http2.IncomingHttpHeaders>((r) => watch.once('response', r));
      assert.equal(watchHeaders[':status'], 200);
      assert.equal(watchHeaders['transfer-encoding'], undefined);
      assert.equal(watchHeaders.connection, undefined);

      // Concurrent GETs while the watch is open, on the same session.
      const gets = await Promise.all([
        ...Array.from({ length: 8 }, () => h2(session, 'GET', '/api/v1/nodes')),
        h2(session, 'GET', '/version'),
        h2(session, 'GET', '/apis'),
      ]);
      for (const g of gets) assert.equal(g.status, 200, g.text);
      assert.equal(JSON.parse(gets[0].text).kind, 'NodeList');

      // A write on the same session shows up on the watch.
      const csr = opensslCsr(c.dir, 'h2-user', { subj: '/CN=h2-user' });
      const created = await h2(session, 'POST', '/apis/certificates.k8s.io/v1/certificatesigningrequests', csrManifest('h2-csr', csr, { signerName: 'kubernetes.io/kube-apiserver-client' }));
      assert.equal(created.status, 201, created.text);
      await waitFor('the watch to see the CSR', () => watchText.includes('"ADDED"') && watchText.includes('h2-csr'), 10_000);
      watch.close();
      // Everything above went over one HTTP/2 connection.
      assert.equal(c.api.connectionStats().h2Sessions - sessionsBefore, 1);
    } finally {
      session.close();
    }
  });

  test('an h2 request without a client certificate is judged per request like on HTTP/1.1 (401), and a node certificate acts as the node', async () => {
    const anon = http2.connect(c.api.url, { ca: c.ca.cert, servername: 'localhost' });
    anon.on('error', () => undefined);
    const node = c.node('h2-node');
    const asNode = http2.connect(c.api.url, { ca: c.ca.cert, cert: node.cert, key: node.key, servername: 'localhost' });
    asNode.on('error', () => undefined);
    try {
      const r = await h2(anon, 'GET', '/api/v1/nodes');
      assert.equal(r.status, 401, r.text);
      const healthz = await h2(anon, 'GET', '/healthz');
      assert.equal(healthz.status, 200);
      const who = await h2(asNode, 'POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' });
      assert.equal(who.status, 201, who.text);
      assert.equal(JSON.parse(who.text).status.userInfo.username, 'system:node:h2-node');
    } finally {
      anon.close();
      asNode.close();
    }
  });

  test('kubectl negotiates h2 for get, watch and apply', async () => {
    const kc = c.kubeconfig({ cert: c.admin.cert, key: c.admin.key });
    const sessionsBefore = c.api.connectionStats().h2Sessions;
    const csr = opensslCsr(c.dir, 'h2-apply', { subj: '/CN=h2-apply' });
    const file = writeIn(c, 'h2-apply.json', csrManifest('h2-apply', csr, { signerName: 'kubernetes.io/kube-apiserver-client' }));
    const applied = await c.kubectl(kc, ['apply', '-f', file]);
    assert.equal(applied.status, 0, applied.stderr);
    // Only kubectl talked to the server meanwhile; an HTTP/1.1 client opens no HTTP/2 session.
    assert.ok(c.api.connectionStats().h2Sessions > sessionsBefore, 'kubectl did not use HTTP/2');
    const got = await c.kubectl(kc, ['get', 'csr', 'h2-apply', '-o', 'name']);
    assert.equal(got.status, 0, got.stderr);
    assert.match(got.stdout, /h2-apply/);
    const watched = await c.kubectl(kc, ['get', 'csr', '-w', '--request-timeout=2s', '-o', 'name'], { timeoutMs: 20_000 });
    assert.match(watched.stdout, /h2-apply/, watched.stderr);
  });

  test('HTTP/1.1 clients are served as before: node https, curl --http1.1, openssl s_client', async () => {
    const v = await call(c, { cert: c.admin.cert, key: c.admin.key }, 'GET', '/version');
    assert.equal(v.status, 200);
    const w = await call(c, { cert: c.admin.cert, key: c.admin.key }, 'GET', '/api/v1/nodes');
    assert.equal(w.status, 200);
    const ca = writeIn(c, 'h1-ca.pem', c.ca.cert);
    const cert = writeIn(c, 'h1-admin.pem', c.admin.cert);
    const key = writeIn(c, 'h1-admin.key', c.admin.key);
    const curl = await run('curl', ['--http1.1', '-sS', '--cacert', ca, '--cert', cert, '--key', key, '-w', '\n%{http_version} %{http_code}', `${c.api.url}/api/v1/nodes`]);
    assert.equal(curl.status, 0, curl.stderr);
    assert.match(curl.stdout, /"NodeList"[\s\S]*\n1\.1 200$/);
    // curl's default (ALPN h2) lands on HTTP/2.
    const curl2 = await run('curl', ['-sS', '--cacert', ca, '--cert', cert, '--key', key, '-w', '\n%{http_version} %{http_code}', `${c.api.url}/version`]);
    assert.match(curl2.stdout, /\n2 200$/, curl2.stderr);
    const port = new URL(c.api.url).port;
    const s = await new Promise<string>((resolve, reject) => {
      const child = spawn('openssl', ['s_client', '-quiet', '-connect', `127.0.0.1:${port}`, '-alpn', 'http/1.1', '-CAfile', ca, '-cert', cert, '-key', key], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      child.stdout.on('data', (d) => (out += d));
      child.on('error', reject);
      child.on('close', () => {
        clearTimeout(timer);
        resolve(out);
      });
      child.stdin.end('GET /version HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    });
    assert.match(s, /^HTTP\/1\.1 200 OK/);
  });

  describe('node proxy over h2', () => {
    let api: RunningApiServer;
    let endpoint: NodeEndpoint;
    let agent: Agent;
    before(async () => {
      const nodeServing = c.ca.issue('h2-node-serving', { cn: 'system:node:h2-proxied', o: 'system:nodes', sans: ['DNS:h2-proxied', 'IP:127.0.0.1'], eku: ['serverAuth'] });
      endpoint = await startNodeEndpoint({ cert: nodeServing.cert, key: nodeServing.key, clientCa: c.ca.cert, logFile: writeIn(c, 'node.log', 'line one\nline two\n'), configz: () => ({ ok: true }), listen: {} });
      const kubeletClient = c.user('kube-apiserver-kubelet-client', 'kube-master');
      const port = Number(new URL(endpoint.url!).port);
      agent = new (class extends Agent {
        override createConnection() {
          return tlsConnect({ host: '127.0.0.1', port, ca: c.ca.cert, cert: kubeletClient.cert, key: kubeletClient.key, servername: 'h2-proxied' });
        }
      })({ keepAlive: true });
      const serving = c.ca.issue('h2-api-serving', { cn: 'kube-apiserver', sans: ['IP:127.0.0.1', 'DNS:localhost'], eku: ['serverAuth'] });
      api = await startApiServer({ cluster: 'test', tls: { cert: serving.cert, key: serving.key }, clientCa: c.ca.cert, store: c.store, nodeTransport: () => agent });
      const made = await call(c, { cert: c.admin.cert, key: c.admin.key }, 'POST', '/api/v1/nodes', { body: { apiVersion: 'v1', kind: 'Node', metadata: { name: 'h2-proxied' } } });
      assert.equal(made.status, 201, made.text);
    });
    after(async () => {
      agent?.destroy();
      await api?.close();
      await endpoint?.close();
    });

    test('GET /api/v1/nodes/NAME/proxy/logs on an h2 session reaches the node endpoint', async () => {
      const session = http2.connect(api.url, { ca: c.ca.cert, cert: c.admin.cert, key: c.admin.key, servername: 'localhost' });
      session.on('error', () => undefined);
      try {
        const healthz = await h2(session, 'GET', '/api/v1/nodes/h2-proxied/proxy/healthz');
        assert.equal(healthz.status, 200, healthz.text);
        assert.equal(healthz.text, 'ok');
        const logs = await h2(session, 'GET', '/api/v1/nodes/h2-proxied/proxy/logs?tailLines=1');
        assert.equal(logs.status, 200, logs.text);
        assert.equal(logs.text, 'line two\n');
        assert.equal(session.alpnProtocol, 'h2');
      } finally {
        session.close();
      }
    });
  });
});
