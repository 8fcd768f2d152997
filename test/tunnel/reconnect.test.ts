// Staying connected: reconnection with jittered exponential backoff after a server restart, dead-peer detection, reconnect().
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { before, describe, it } from 'node:test';
import { NodeHttpsAgent, backoffDelay, startTunnelAgent, startTunnelServer } from '../../src/tunnel/index.js';
import { waitFor } from '../../src/util/wait.js';
import { clusterPki, collect, fetchVia, startNodeEndpoint, startTunnel, type ClusterPki, type Issued } from './helpers.js';

describe('tunnel reconnection', () => {
  let pki: ClusterPki;
  let api: Issued;

  before(async () => {
    pki = await clusterPki();
    api = await pki.apiserverClient();
  });

  it('backoffDelay: equal jitter around a doubling step, capped', () => {
    const b = { initialMs: 100, maxMs: 1000 };
    assert.deepEqual([0, 1, 2, 3, 4, 10].map((n) => backoffDelay(b, n, () => 0)), [50, 100, 200, 400, 500, 500]);
    assert.deepEqual([0, 1, 2, 3, 4, 10].map((n) => backoffDelay(b, n, () => 1)), [100, 200, 400, 800, 1000, 1000]);
    assert.equal(backoffDelay(b, 1e6, () => 1), 1000, 'no overflow after many failures');
  });

  it('after the tunnel server restarts on the same port, the agent reconnects by itself, backing off while it is down', async () => {
    const node = 'node-restart';
    const backoff = { initialMs: 40, maxMs: 2000 };
    const t = await startTunnel(pki, node, { agent: { backoff } });
    const port = t.server.port;
    const serving = await pki.tunnelServing();
    let server2: Awaited<ReturnType<typeof startTunnelServer>> | undefined;
    try {
      const disconnected = collect(t.agent, 'disconnected');
      const failures = collect(t.agent, 'connectError');
      const connected = collect(t.agent, 'connected');
      await t.server.close();
      await waitFor('the agent to notice', () => disconnected.length > 0, 10_000);
      assert.equal(t.agent.connected, false);
      await waitFor('five failed attempts', () => failures.length >= 5, 20_000);
      assert.match(String(failures[0].args[0]), /ECONNREFUSED/);
      // Each wait is at least half of its doubling step (timers may fire a millisecond early).
      for (let i = 1; i < 5; i++) {
        const gap = failures[i].at - failures[i - 1].at;
        const floor = Math.min(backoff.maxMs, backoff.initialMs * 2 ** (i - 1)) / 2;
        assert.ok(gap >= floor - 5, `wait ${i} was ${gap} ms, below its floor of ${floor} ms`);
      }

      server2 = await startTunnelServer({ port, tls: { cert: serving.cert, key: serving.key, clientCa: pki.ca } });
      await server2.waitFor(node, 20_000);
      await t.agent.waitConnected(10_000);
      assert.equal(connected.length, 1);
      const http = new NodeHttpsAgent(server2, { cert: api.cert, key: api.key, ca: pki.ca });
      try {
        const r = await fetchVia(http, `https://${node}/whoami`);
        assert.equal(JSON.parse(r.body.toString()).node, node);
      } finally {
        http.destroy();
      }
    } finally {
      await t.close();
      await server2?.close();
    }
  });

  it('a connection that goes silent (a frozen middlebox) is found dead by PINGs on both sides, and replaced', async () => {
    const node = 'node-silent';
    const serving = await pki.tunnelServing();
    const keepalive = { intervalMs: 100, timeoutMs: 300 };
    const logs: Array<{ msg: string; fields?: object }> = [];
    const server = await startTunnelServer({ tls: { cert: serving.cert, key: serving.key, clientCa: pki.ca }, keepalive, log: (msg, fields) => logs.push({ msg, fields }) });
    const proxy = await freezableProxy(server.port);
    const endpoint = await startNodeEndpoint(pki, node);
    const client = await pki.nodeClient(node);
    const agent = startTunnelAgent({
      url: `https://127.0.0.1:${proxy.port}`,
      serverName: 'localhost',
      credentials: () => ({ cert: client.cert, key: client.key, ca: pki.ca }),
      onStream: (s) => endpoint.server.emit('connection', s),
      backoff: { initialMs: 50, maxMs: 200 },
      keepalive,
    });
    try {
      await agent.waitConnected(10_000);
      await server.waitFor(node, 10_000);
      const disconnected = collect(agent, 'disconnected');
      proxy.freeze();
      await waitFor('the agent to find the connection dead', () => disconnected.length > 0, 10_000);
      assert.match(String(disconnected[0].args[0]), /does not answer: no PING answer/);
      // The server finds it too (by then the agent may already be back on a new connection).
      await waitFor('the server to drop the silent connection', () =>
        logs.some((l) => l.msg === 'tunnel: dropping node' && /agent does not answer: no PING answer/.test((l.fields as { reason: string }).reason)),
      10_000);
      // New connections through the proxy flow again.
      await agent.waitConnected(10_000);
      await server.waitFor(node, 10_000);
    } finally {
      await agent.close();
      await server.close();
      proxy.close();
      endpoint.close();
    }
  });

  it('reconnect() makes a new connection before it lets the old one go: a download in flight finishes', async () => {
    const node = 'node-renew';
    const t = await startTunnel(pki, node);
    const http = new NodeHttpsAgent(t.server, { cert: api.cert, key: api.key, ca: pki.ca, keepAlive: false });
    try {
      const connected = collect(t.agent, 'connected');
      const disconnected = collect(t.agent, 'disconnected');
      const total = 4 * 1024 * 1024;
      const inflight = fetchVia(http, `https://${node}/big?bytes=${total}&id=renew`);
      await waitFor('the download to start', () => t.endpoint.sent.has('renew'), 10_000);
      t.agent.reconnect();
      await waitFor('the new connection', () => connected.length === 1, 10_000);
      assert.equal(t.agent.connected, true);
      assert.equal((await inflight).body.length, total);
      const r = await fetchVia(http, `https://${node}/whoami`);
      assert.equal(r.status, 200);
      assert.equal(disconnected.length, 0, 'the node was never without a connection');
      assert.equal(t.logs.filter((l) => l.msg === 'tunnel: node connected').length, 2);
    } finally {
      http.destroy();
      await t.close();
    }
  });
});

/** A TCP relay that can stop relaying without closing anything, like a middlebox that lost its state. */
async function freezableProxy(target: number): Promise<{ port: number; freeze(): void; close(): void }> {
  const pairs = new Set<[Socket, Socket]>();
  const all = new Set<Socket>();
  const server: Server = createServer((a) => {
    const b = connect(target, '127.0.0.1');
    for (const s of [a, b]) {
      all.add(s);
      s.once('close', () => all.delete(s));
    }
    const pair: [Socket, Socket] = [a, b];
    pairs.add(pair);
    a.pipe(b);
    b.pipe(a);
    const end = () => {
      a.destroy();
      b.destroy();
      pairs.delete(pair);
    };
    a.on('error', end).on('close', end);
    b.on('error', end).on('close', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    freeze() {
      for (const [a, b] of pairs) {
        a.unpipe(b);
        b.unpipe(a);
        a.pause();
        b.pause();
      }
      pairs.clear();
    },
    close() {
      server.close();
      for (const s of all) s.destroy();
    },
  };
}
