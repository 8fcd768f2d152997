// The tunnel server records its agents (observed clients): user, groups and issuing CA key at connect, and when a node
// replaces its connection with one on a certificate of another CA (a new generation), the newer is seen last.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { parseCertificate } from '../../src/pki/index.js';
import { ObservedClients } from '../../src/tls/observed-clients.js';
import { startTunnelAgent, type TunnelAgent } from '../../src/tunnel/index.js';
import { waitFor } from '../../src/util/wait.js';
import { clusterPki, startTunnel, type Tunnel } from './helpers.js';

const skiOf = (pem: string) => parseCertificate(pem).subjectKeyId!.toString('hex');

describe('tunnel server: observed clients', () => {
  let t: Tunnel | undefined;
  let moved: TunnelAgent | undefined;
  after(async () => {
    await moved?.close();
    await t?.close();
  });

  it('records the connected node, and a replacing connection on a new CA is seen no earlier than the one it replaced', async () => {
    const g1 = await clusterPki('root g1');
    const g2 = await clusterPki('root g2');
    const observed = new ObservedClients();
    const serving = await g1.tunnelServing();
    // Every reading of this clock is 10 ms after the one before: sightings made one after another never share a time.
    let ticks = 0;
    const clock = { now: () => new Date(Date.now() + 10 * ticks++) };
    t = await startTunnel(g1, 'node-a', { server: { observed, clock, tls: { cert: serving.cert, key: serving.key, clientCa: g1.ca + g2.ca } } });
    const first = observed.list();
    assert.equal(first.length, 1);
    assert.deepEqual(
      { user: first[0].user, groups: first[0].groups, issuer: first[0].issuerKeyId, server: first[0].server, address: first[0].address },
      { user: 'system:node:node-a', groups: ['system:nodes'], issuer: skiOf(g1.ca), server: 'tunnel', address: '127.0.0.1' },
    );

    // The node comes back with a certificate of the other CA: the old connection is replaced, and closes after.
    const client = await g2.nodeClient('node-a');
    moved = startTunnelAgent({ url: t.server.url, credentials: () => ({ cert: client.cert, key: client.key, ca: g1.ca }), onStream: (s) => s.destroy(), backoff: { initialMs: 50, maxMs: 500 } });
    await moved.waitConnected(10_000);
    await waitFor('the replaced connection to close', () => (t!.logs.some((l) => l.msg === 'tunnel: node connected' && (l.fields as { replaced?: boolean }).replaced) && t!.server.stats().agents === 1 ? true : undefined), 10_000);
    await t.agent.close();
    await waitFor('the old connection to be gone', () => (t!.server.connectionStats().open === 1 ? true : undefined), 10_000);
    const bySki = (ski: string) => observed.list().find((s) => s.issuerKeyId === ski);
    assert.ok(bySki(skiOf(g1.ca)) && bySki(skiOf(g2.ca)), JSON.stringify(observed.list()));
    assert.ok(bySki(skiOf(g2.ca))!.lastSeenMs >= bySki(skiOf(g1.ca))!.lastSeenMs, JSON.stringify(observed.list()));
  });
});
