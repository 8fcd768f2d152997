// Streams through the tunnel: HTTPS end to end to the node endpoint, many at once, flow control per stream, only ciphertext relayed.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request } from 'node:https';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { NodeHttpsAgent } from '../../src/tunnel/index.js';
import { TrustplaneError } from '../../src/util/errors.js';
import { waitFor } from '../../src/util/wait.js';
import { clusterPki, fetchVia, startNodeEndpoint, startTunnel, type ClusterPki, type Issued, type Tunnel } from './helpers.js';

const NODE = 'node-a';

describe('tunnel streams', () => {
  let pki: ClusterPki;
  let t: Tunnel;
  let apiClient: Issued;
  const taps: Array<{ node: string; id: number; direction: string; chunk: Buffer }> = [];
  let tapOn = false;

  before(async () => {
    pki = await clusterPki();
    apiClient = await pki.apiserverClient();
    t = await startTunnel(pki, NODE, {
      server: {
        onTap: (node, id, direction, chunk) => {
          if (tapOn) taps.push({ node, id, direction, chunk: Buffer.from(chunk) });
        },
      },
    });
  });
  after(async () => {
    await t?.close();
  });

  const agentFor = (o: { keepAlive?: boolean; cert?: Issued } = {}) =>
    new NodeHttpsAgent(t.server, { cert: (o.cert ?? apiClient).cert, key: (o.cert ?? apiClient).key, ca: pki.ca, keepAlive: o.keepAlive ?? false, maxSockets: Infinity });

  it('the agent connects and the server dials an HTTPS request to the node endpoint, TLS end to end', async () => {
    assert.deepEqual(t.server.connectedNodes(), [NODE]);
    assert.equal(t.server.isConnected(NODE), true);
    assert.equal(t.agent.connected, true);
    const agent = agentFor();
    try {
      const r = await fetchVia(agent, `https://${NODE}/whoami`);
      assert.equal(r.status, 200);
      const who = JSON.parse(r.body.toString());
      // The node endpoint saw the API server's client certificate: the TLS inside the stream is between these two.
      assert.deepEqual(who, { node: NODE, client: 'kube-apiserver-kubelet-client', authorized: true, protocol: 'TLSv1.3' });
      // And the API server saw the node's serving certificate.
      assert.equal(r.socket.getPeerCertificate().subject.CN, `system:node:${NODE}`);
      assert.equal(r.socket.getProtocol(), 'TLSv1.3');
      const connected = t.logs.find((l) => l.msg === 'tunnel: node connected');
      assert.equal((connected?.fields as { protocol?: string }).protocol, 'TLSv1.3', 'the agent connection itself is TLS 1.3');
    } finally {
      agent.destroy();
    }
  });

  it('inside the stream, the node endpoint refuses a client certificate from another CA, and the caller refuses a serving certificate for another node', async () => {
    const other = await clusterPki('another cluster');
    const foreign = await other.apiserverClient();
    const bad = agentFor({ cert: foreign });
    try {
      await assert.rejects(fetchVia(bad, `https://${NODE}/whoami`), /alert|socket hang up|ECONNRESET|certificate/i);
    } finally {
      bad.destroy();
    }
    // The endpoint holds node-a's serving certificate; a caller that wants node-b there must refuse it.
    const s = await t.server.dial(NODE);
    const err = await new Promise<Error>((resolve) => {
      const c = connect({ socket: s, ca: pki.ca, cert: apiClient.cert, key: apiClient.key, servername: 'node-b' }, () => resolve(new Error('connected')));
      c.on('error', resolve);
    });
    s.destroy();
    assert.match(err.message, /Hostname\/IP does not match certificate's altnames.*node-b/);
  });

  it('100 concurrent streams each get their own answer', async () => {
    const agent = agentFor();
    const before = t.endpoint.accepted;
    try {
      const bodies = Array.from({ length: 100 }, (_, i) => `stream ${i} ${randomBytes(8).toString('hex')}`);
      const results = await Promise.all(bodies.map((b) => fetchVia(agent, `https://${NODE}/echo`, { method: 'POST', body: b })));
      results.forEach((r, i) => {
        assert.equal(r.status, 200);
        assert.equal(r.body.toString(), bodies[i]);
      });
      assert.equal(t.endpoint.accepted - before, 100, 'every request had its own stream and inner TLS connection');
    } finally {
      agent.destroy();
    }
    await waitFor('all streams closed', () => t.server.stats().streams === 0, 10_000);
    assert.deepEqual(t.server.stats(), { agents: 1, streams: 0 });
  });

  it('a stalled stream (8 MiB the reader does not read) does not stall another stream, and loses nothing', async () => {
    const total = 8 * 1024 * 1024;
    const stalledAgent = agentFor({ keepAlive: true });
    const agent = agentFor({ keepAlive: true });
    try {
      // Stalled: the response arrives, and nobody reads its body.
      const stalled = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
        const req = request(`https://${NODE}/big?bytes=${total}&id=stalled`, { agent: stalledAgent }, resolve);
        req.on('error', reject);
        req.end();
      });
      stalled.pause();
      // The node is held back by flow control: it has written a bounded amount and waits.
      await waitFor('the node to be blocked by flow control', () => {
        const a = t.endpoint.sent.get('stalled') ?? 0;
        return a > 0 && a < total;
      }, 10_000);
      const held = t.endpoint.sent.get('stalled')!;

      for (let i = 0; i < 20; i++) {
        const r = await fetchVia(agent, `https://${NODE}/echo`, { method: 'POST', body: `ping ${i}`, timeoutMs: 5_000 });
        assert.equal(r.body.toString(), `ping ${i}`);
      }
      const big = await fetchVia(agent, `https://${NODE}/big?bytes=${2 * 1024 * 1024}&id=other`, { timeoutMs: 10_000 });
      assert.equal(big.body.length, 2 * 1024 * 1024, 'a bulk transfer on another stream completes while one is stalled');

      const sentWhileStalled = t.endpoint.sent.get('stalled')!;
      assert.ok(sentWhileStalled < total / 2, `the stalled stream is bounded by its windows (${sentWhileStalled} of ${total} bytes sent, ${held} when first blocked)`);

      // Reading resumes; every byte arrives.
      let got = 0;
      stalled.on('data', (d: Buffer) => (got += d.length));
      stalled.resume();
      await new Promise((r) => stalled.once('end', r));
      assert.equal(got, total);
    } finally {
      stalledAgent.destroy();
      agent.destroy();
    }
  });

  it('a stalled upload (8 MiB the node does not read) does not stall another stream, and loses nothing', async () => {
    const total = 8 * 1024 * 1024;
    const holdAgent = agentFor({ keepAlive: true });
    const agent = agentFor({ keepAlive: true });
    try {
      let written = 0;
      let answer: Promise<import('node:http').IncomingMessage> | undefined;
      const upload = (async () => {
        const req = request(`https://${NODE}/hold?id=up`, { agent: holdAgent, method: 'POST', headers: { 'content-length': total } });
        answer = new Promise((resolve, reject) => {
          req.on('response', resolve);
          req.on('error', reject);
        });
        const chunk = Buffer.alloc(64 * 1024, 0x62);
        while (written < total) {
          written += chunk.length;
          if (!req.write(chunk)) await new Promise((r) => req.once('drain', r));
        }
        req.end();
      })();
      await waitFor('the upload to reach the node', () => t.endpoint.held.has('up'), 10_000);

      for (let i = 0; i < 20; i++) {
        const r = await fetchVia(agent, `https://${NODE}/echo`, { method: 'POST', body: `ping ${i}`, timeoutMs: 5_000 });
        assert.equal(r.body.toString(), `ping ${i}`);
      }
      assert.ok(written < total / 2, `the writer is held back by flow control (${written} of ${total} bytes accepted)`);

      t.endpoint.held.get('up')!();
      await upload;
      const res = await answer!;
      const body = await new Promise<string>((resolve) => {
        let s = '';
        res.on('data', (d) => (s += d));
        res.on('end', () => resolve(s));
      });
      assert.equal(Number(body), total, 'every byte arrived once the node read');
    } finally {
      holdAgent.destroy();
      agent.destroy();
    }
  });

  it('the tunnel server relays only ciphertext: the tap sees TLS records and never the marker', async () => {
    const marker = `MARKER-${randomBytes(12).toString('hex')}`;
    const agent = agentFor();
    taps.length = 0;
    tapOn = true;
    let r;
    try {
      r = await fetchVia(agent, `https://${NODE}/echo`, { method: 'POST', body: `request ${marker} body` });
    } finally {
      tapOn = false;
      agent.destroy();
    }
    assert.equal(r.body.toString(), `request ${marker} body`, 'the marker did travel, in both directions');
    const toNode = Buffer.concat(taps.filter((x) => x.direction === 'to-node').map((x) => x.chunk));
    const fromNode = Buffer.concat(taps.filter((x) => x.direction === 'from-node').map((x) => x.chunk));
    assert.ok(toNode.length > 200, `captured ${toNode.length} bytes to the node`);
    assert.ok(fromNode.length > 200, `captured ${fromNode.length} bytes from the node`);
    assert.equal(toNode[0], 0x16, 'the first bytes to the node are a TLS handshake record (ClientHello)');
    assert.equal(fromNode[0], 0x16, 'the first bytes from the node are a TLS handshake record (ServerHello)');
    for (const b of [toNode, fromNode]) {
      assert.equal(b.indexOf(marker), -1);
      assert.equal(b.indexOf(Buffer.from(marker, 'utf16le')), -1);
      assert.equal(b.indexOf('POST /echo'), -1, 'no plaintext HTTP either');
    }
    assert.ok(taps.every((x) => x.node === NODE && x.id > 0));
  });

  it('dial of an unknown node, and of a node whose agent went away, rejects Unavailable with a hint', async () => {
    const e1 = await t.server.dial('no-such-node').catch((e: unknown) => e);
    assert.ok(e1 instanceof TrustplaneError);
    assert.equal(e1.reason, 'Unavailable');
    assert.match(e1.message, /no-such-node.*no tunnel connected/);
    assert.match(e1.hint ?? '', /node agent/);

    // A second node that connects and then leaves.
    const endpoint = await startNodeEndpoint(pki, 'node-gone');
    const gone = await startTunnel(pki, 'node-gone', { endpoint });
    try {
      const s = await gone.server.dial('node-gone');
      s.destroy();
      await gone.agent.close();
      await waitFor('node-gone to disconnect', () => !gone.server.isConnected('node-gone'), 10_000);
      const e2 = await gone.server.dial('node-gone').catch((e: unknown) => e);
      assert.ok(e2 instanceof TrustplaneError);
      assert.equal(e2.reason, 'Unavailable');
      assert.equal(e2.httpStatus, 503);
    } finally {
      await gone.close();
    }
  });
});
