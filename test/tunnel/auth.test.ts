// Who may hold a tunnel: node certificates from the cluster CA only, TLS 1.2 at the least, revocation, CA changes, replacement.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NodeHttpsAgent, startTunnelAgent, type TunnelAgent } from '../../src/tunnel/index.js';
import { ALPN } from '../../src/tunnel/protocol.js';
import { ManualClock } from '../../src/util/clock.js';
import { waitFor } from '../../src/util/wait.js';
import { assertFloor } from '../helpers/tls-floor.js';
import { clusterPki, collect, fetchVia, sClient, startNodeEndpoint, startTunnel, type ClusterPki, type Issued, type Tunnel } from './helpers.js';

describe('tunnel authentication', () => {
  let pki: ClusterPki;
  let t: Tunnel;
  let dir: string;
  const revoked = new Set<string>();
  const agents: TunnelAgent[] = [];

  before(async () => {
    pki = await clusterPki();
    dir = mkdtempSync(join(tmpdir(), 'tp-tunnel-'));
    t = await startTunnel(pki, 'node-a', { server: { isRevoked: (_node, serial) => revoked.has(serial) } });
  });
  after(async () => {
    for (const a of agents) await a.close();
    await t?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** An agent with the given certificate; resolves once its first attempt has failed, with the reason it was given. */
  async function refusedAgent(client: Issued, o: { ca?: string } = {}): Promise<string> {
    const agent = startTunnelAgent({
      url: t.server.url,
      credentials: () => ({ cert: client.cert, key: client.key, ca: o.ca ?? pki.ca }),
      onStream: (s) => s.destroy(),
      backoff: { initialMs: 60_000, maxMs: 60_000 },
    });
    agents.push(agent);
    const errors = collect(agent, 'connectError');
    await waitFor('the attempt to fail', () => errors.length > 0, 10_000);
    assert.equal(agent.connected, false);
    await agent.close();
    return String(errors[0].args[0]);
  }

  it('an agent with a node certificate from another CA is refused, told why, and does not displace the real node', async () => {
    const other = await clusterPki('another cluster root CA');
    const reason = await refusedAgent(await other.nodeClient('node-a'));
    assert.match(reason, /tunnel refused: client certificate not accepted \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/);
    assert.ok(t.logs.some((l) => l.msg === 'tunnel: refused agent'));
    assert.deepEqual(t.server.connectedNodes(), ['node-a']);
    assert.equal(t.agent.connected, true);
    assert.equal(t.logs.filter((l) => l.msg === 'tunnel: node connected').length, 1);
  });

  it('a certificate from the cluster CA that is not a node\'s is refused, and the agent is told why', async () => {
    const admin = await pki.issue({ cn: 'admin', o: ['system:masters'], eku: ['clientAuth'] });
    assert.match(await refusedAgent(admin), /tunnel refused: certificate "O=system:masters, CN=admin" is not a node's/);
    const noGroup = await pki.issue({ cn: 'system:node:node-x', eku: ['clientAuth'] });
    assert.match(await refusedAgent(noGroup), /tunnel refused: .*CN=system:node:node-x.* is not a node's/);
    const badName = await pki.issue({ cn: 'system:node:Not_A_Name', o: ['system:nodes'], eku: ['clientAuth'] });
    assert.match(await refusedAgent(badName), /is not a node's/);
    const serverOnly = await pki.issue({ cn: 'system:node:node-x', o: ['system:nodes'], eku: ['serverAuth'] });
    assert.match(await refusedAgent(serverOnly), /client certificate not accepted \(INVALID_PURPOSE\)/, 'a certificate without clientAuth is refused');
    assert.equal(t.server.isConnected('node-x'), false);
  });

  // In this process Node's own floor (TLS 1.2) refuses TLS 1.1 too; the project's floor alone is tested below.
  it('TLS 1.1 is refused with a protocol version alert; 1.2 is accepted; minVersion TLSv1.3 refuses 1.2', async () => {
    const client = await pki.nodeClient('node-probe');
    const files = { cert: join(dir, 'probe.crt'), key: join(dir, 'probe.key'), ca: join(dir, 'ca.crt') };
    writeFileSync(files.cert, client.cert);
    writeFileSync(files.key, client.key);
    writeFileSync(files.ca, pki.ca);
    // SECLEVEL=0 lets this openssl offer TLS 1.1 at all, so the refusal is the server's.
    const old = await sClient(t.server.port, ['-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0', '-cert', files.cert, '-key', files.key]);
    assert.notEqual(old.status, 0, old.output);
    assert.match(old.output, /alert protocol version/, old.output);

    const v12 = await sClient(t.server.port, ['-tls1_2', '-cert', files.cert, '-key', files.key, '-CAfile', files.ca, '-alpn', ALPN]);
    assert.equal(v12.status, 0, v12.output);
    assert.match(v12.output, /Protocol\s*: TLSv1\.2/);
    assert.match(v12.output, /Verify return code: 0 \(ok\)/);
    assert.match(v12.output, new RegExp(`ALPN protocol: ${ALPN.replace(/[/.]/g, '\\$&')}`));

    const strict = await startTunnel(pki, 'node-s', { server: { tls: { ...(await serverTls(pki)), minVersion: 'TLSv1.3' } } });
    try {
      const r = await sClient(strict.server.port, ['-tls1_2', '-cert', files.cert, '-key', files.key, '-CAfile', files.ca]);
      assert.notEqual(r.status, 0, r.output);
      assert.match(r.output, /alert protocol version/);
    } finally {
      await strict.close();
    }
  });

  it('a revoked certificate is refused with the reason; the renewed certificate, picked up by updateCredentials(), is accepted', async () => {
    const first = await pki.nodeClient('node-r');
    const renewed = await pki.nodeClient('node-r');
    revoked.add(first.serialHex);
    let current = first;
    const endpoint = await startNodeEndpoint(pki, 'node-r');
    const agent = startTunnelAgent({
      url: t.server.url,
      credentials: () => ({ cert: current.cert, key: current.key, ca: pki.ca }),
      onStream: (s) => endpoint.server.emit('connection', s),
      // Long enough that only updateCredentials() can bring it back within the test.
      backoff: { initialMs: 60_000, maxMs: 60_000 },
    });
    agents.push(agent);
    try {
      await waitFor('the revoked agent to be refused', () => agent.lastError, 10_000);
      assert.match(agent.lastError!, new RegExp(`tunnel refused: certificate ${first.serialHex} of node node-r is revoked`));
      assert.equal(t.server.isConnected('node-r'), false);

      current = renewed;
      agent.updateCredentials();
      await agent.waitConnected(10_000);
      await t.server.waitFor('node-r', 10_000);
      const connected = t.logs.filter((l) => l.msg === 'tunnel: node connected' && (l.fields as { node: string }).node === 'node-r');
      assert.equal((connected.at(-1)!.fields as { serial: string }).serial, renewed.serialHex);
    } finally {
      await agent.close();
      endpoint.close();
    }
  });

  it('a connection is dropped when its client certificate expires (by the injected clock), refused after, and a renewed certificate gets back in', async () => {
    const clock = new ManualClock(Date.now());
    const node = 'node-exp';
    const short = await pki.issue({ cn: `system:node:${node}`, o: ['system:nodes'], eku: ['clientAuth'], validMs: 3600_000 });
    const long = await pki.issue({ cn: `system:node:${node}`, o: ['system:nodes'], eku: ['clientAuth'], validMs: 48 * 3600_000 });
    let current = short;
    const pair = await startTunnel(pki, node, {
      server: { clock, keepalive: { intervalMs: 50, timeoutMs: 5_000 } },
      agent: { credentials: () => ({ cert: current.cert, key: current.key, ca: pki.ca }), backoff: { initialMs: 50, maxMs: 100 } },
    });
    try {
      const dropped = collect(pair.agent, 'disconnected');
      clock.advance(2 * 3600_000);
      await waitFor('the expired connection to be dropped', () => dropped.length > 0, 10_000);
      assert.match(String(dropped[0].args[0]), /client certificate expired at/);
      await waitFor('a refused attempt', () => /tunnel refused: .* expired at/.test(pair.agent.lastError ?? ''), 10_000);

      current = long;
      pair.agent.updateCredentials();
      await pair.agent.waitConnected(10_000);
      await pair.server.waitFor(node, 10_000);
    } finally {
      await pair.close();
    }
  });

  it('disconnect(node) drops the connection with a reason, and the agent comes back by itself', async () => {
    const disconnected = collect(t.agent, 'disconnected');
    t.server.disconnect('node-a');
    await waitFor('the agent to notice', () => disconnected.length > 0, 10_000);
    assert.match(String(disconnected[0].args[0]), /disconnected by the control plane/);
    await t.agent.waitConnected(10_000);
    await t.server.waitFor('node-a', 10_000);
  });

  it('a second connection of the same node replaces the first; streams open on the first finish there', async () => {
    const node = 'node-twin';
    const pair = await startTunnel(pki, node, { agent: { backoff: { initialMs: 60_000, maxMs: 60_000 } }, endpoint: await startNodeEndpoint(pki, node, { label: 'first' }) });
    const second = await startNodeEndpoint(pki, node, { label: 'second' });
    const api = await pki.apiserverClient();
    const http = new NodeHttpsAgent(pair.server, { cert: api.cert, key: api.key, ca: pki.ca, keepAlive: false });
    let agent2: TunnelAgent | undefined;
    try {
      // A long download stays open on the first connection while the second arrives.
      const inflight = fetchVia(http, `https://${node}/big?bytes=${4 * 1024 * 1024}&id=twin`);
      await waitFor('the download to start', () => pair.endpoint.sent.has('twin'), 10_000);

      const c2 = await pki.nodeClient(node);
      agent2 = startTunnelAgent({ url: pair.server.url, credentials: () => ({ cert: c2.cert, key: c2.key, ca: pki.ca }), onStream: (s) => second.server.emit('connection', s), backoff: { initialMs: 60_000, maxMs: 60_000 } });
      await agent2.waitConnected(10_000);
      await waitFor('the first agent to be let go', () => !pair.agent.connected, 10_000);
      assert.match(pair.agent.lastError ?? '', /replaced by a newer connection/);

      const who = await fetchVia(http, `https://${node}/whoami`);
      assert.equal(JSON.parse(who.body.toString()).label, 'second', 'new streams go to the new connection');
      assert.equal((await inflight).body.length, 4 * 1024 * 1024, 'the stream on the old connection finished');
      assert.deepEqual(pair.server.connectedNodes(), [node]);
      assert.equal(pair.server.stats().agents, 1);
    } finally {
      http.destroy();
      await agent2?.close();
      await pair.close();
      second.close();
    }
  });

  it('setClientCa: agents whose certificates no longer chain are dropped with the reason; trusting both CAs lets them back', async () => {
    const next = await clusterPki('next cluster root CA');
    const pair = await startTunnel(pki, 'node-c');
    try {
      const dropped = collect(pair.agent, 'disconnected');
      pair.server.setClientCa(next.ca);
      await waitFor('the agent to be dropped', () => dropped.length > 0, 10_000);
      assert.match(String(dropped[0].args[0]), /client certificate no longer trusted/);
      // It keeps trying; new handshakes are judged by the new CA alone.
      await waitFor('a refused attempt', () => /client certificate not accepted/.test(pair.agent.lastError ?? ''), 10_000);
      assert.equal(pair.server.isConnected('node-c'), false);
      assert.throws(() => pair.server.setClientCa('not a certificate'), /client CA bundle/);

      pair.server.setClientCa(next.ca + pki.ca);
      await pair.agent.waitConnected(10_000);
      await pair.server.waitFor('node-c', 10_000);
    } finally {
      await pair.close();
    }
  });
});

describe('tunnel server TLS floor, with Node\'s own floor lowered to TLS 1.0 in the server\'s process', () => {
  it('the default floor: TLS 1.0 and 1.1 get a protocol_version alert; 1.2 with a node certificate negotiates', () =>
    assertFloor({ server: 'tunnel' }, ['TLSv1', 'TLSv1.1'], ['TLSv1.2'], ['-alpn', ALPN]));

  it('minVersion TLSv1.3: a TLS 1.2 client gets a protocol_version alert; 1.3 negotiates', () =>
    assertFloor({ server: 'tunnel', minVersion: 'TLSv1.3' }, ['TLSv1.2'], ['TLSv1.3'], ['-alpn', ALPN]));
});

async function serverTls(pki: ClusterPki) {
  const s = await pki.tunnelServing();
  return { cert: s.cert, key: s.key, clientCa: pki.ca };
}
