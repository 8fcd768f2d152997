// The node proxy and kept-alive connections: a node endpoint (or a tunnel being replaced) may close an idle kept-alive
// connection just as a request goes out on it. A GET is then sent once more on a fresh connection, and the caller gets
// the answer; a request with a body is not sent twice.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { Agent, createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { connect } from 'node:tls';
import { after, before, test } from 'node:test';
import { nodeProxyTarget, proxyToNode } from '../../src/apiserver/api/node-proxy.js';
import { TrustplaneError } from '../../src/util/errors.js';
import { makeOpensslCa, type OpensslCa } from '../helpers/openssl-certs.js';

let ca: OpensslCa;
let node: HttpsServer;
let api: HttpServer;
let apiUrl: string;
let nodeAgent: Agent;
const served: string[] = [];

/** An agent that dials every node name to the one test node endpoint, keeping connections alive (as the tunnel's does). */
class OneNodeAgent extends Agent {
  constructor(private readonly port: number) {
    super({ keepAlive: true, maxSockets: 1, ca: ca.cert });
  }
  override createConnection(): Socket {
    return connect({ host: '127.0.0.1', port: this.port, ca: ca.cert, servername: 'localhost' });
  }
}

before(async () => {
  ca = makeOpensslCa('node proxy test CA');
  const leaf = ca.issue('node', { cn: 'node', sans: ['DNS:localhost'], eku: ['serverAuth'] });
  // The second request on each connection finds it closed: the race a kept-alive connection can lose.
  node = createHttpsServer({ cert: leaf.cert, key: leaf.key }, (req, res) => {
    const n = ((req.socket as Socket & { count?: number }).count = ((req.socket as Socket & { count?: number }).count ?? 0) + 1);
    if (n === 2) return req.socket.destroy();
    served.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => res.end(`ok ${req.url}`));
  });
  await new Promise<void>((r) => node.listen(0, '127.0.0.1', r));
  nodeAgent = new OneNodeAgent((node.address() as { port: number }).port);
  const deps = { transport: () => nodeAgent, nodeExists: async () => undefined, trackStream: () => () => undefined };
  api = createHttpServer((req, res) => {
    const target = nodeProxyTarget(new URL(req.url!, 'http://x').pathname)!;
    proxyToNode(req, res, { name: 'admin', groups: ['system:masters'] }, target, '', deps).catch((e: TrustplaneError) => {
      res.writeHead(503).end(e.message);
    });
  });
  await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
  apiUrl = `http://127.0.0.1:${(api.address() as { port: number }).port}`;
});
after(async () => {
  nodeAgent?.destroy();
  await new Promise((r) => api?.close(r));
  await new Promise((r) => node?.close(r));
  if (ca) rmSync(ca.dir, { recursive: true, force: true });
});

test('a GET that meets a kept-alive connection closed under it is answered from a fresh one', async () => {
  const first = await fetch(`${apiUrl}/api/v1/nodes/n1/proxy/healthz`);
  assert.equal(await first.text(), 'ok /healthz');
  // Goes out on the kept-alive connection, which the node closes: sent again on a new connection.
  const second = await fetch(`${apiUrl}/api/v1/nodes/n1/proxy/metrics`);
  assert.equal(second.status, 200);
  assert.equal(await second.text(), 'ok /metrics');
  assert.deepEqual(served, ['GET /healthz', 'GET /metrics']);
});

test('a POST is not sent twice: the caller is told the node did not answer', async () => {
  served.length = 0;
  nodeAgent.destroy();
  nodeAgent = new OneNodeAgent((node.address() as { port: number }).port);
  assert.equal(await (await fetch(`${apiUrl}/api/v1/nodes/n1/proxy/a`, { method: 'POST', body: 'x' })).text(), 'ok /a');
  const r = await fetch(`${apiUrl}/api/v1/nodes/n1/proxy/b`, { method: 'POST', body: 'y' });
  assert.equal(r.status, 503);
  assert.match(await r.text(), /node n1 did not answer through the tunnel/);
  assert.deepEqual(served, ['POST /a']);
});
