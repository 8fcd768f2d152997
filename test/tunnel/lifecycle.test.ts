// close() releases everything: a process running one end of a tunnel exits by itself once it closes that end, streams open or not.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { NodeHttpsAgent, startTunnelAgent, startTunnelServer } from '../../src/tunnel/index.js';
import { waitFor } from '../../src/util/wait.js';
import { clusterPki, collect, fetchVia, startNodeEndpoint, startPeer, type ClusterPki } from './helpers.js';

describe('tunnel lifecycle', () => {
  let pki: ClusterPki;
  before(async () => {
    pki = await clusterPki();
  });

  it('a node process exits by itself after agent.close(), though the server still holds streams to it', async () => {
    const serving = await pki.tunnelServing();
    const server = await startTunnelServer({ tls: { cert: serving.cert, key: serving.key, clientCa: pki.ca } });
    const api = await pki.apiserverClient();
    const http = new NodeHttpsAgent(server, { cert: api.cert, key: api.key, ca: pki.ca, keepAlive: true });
    try {
      const node = 'node-child';
      const child = startPeer({ role: 'agent', node, ca: pki.ca, client: await pki.nodeClient(node), serving: await pki.nodeServing(node), url: server.url });
      await child.next();
      const r = await fetchVia(http, `https://${node}/`);
      assert.equal(r.body.toString(), `hello from ${node}`);
      const raw = await server.dial(node);
      raw.on('error', () => undefined);
      child.close();
      assert.equal(await child.exited(20_000), 0, child.out());
      assert.doesNotMatch(child.out(), /still running/);
      await waitFor('the server to see the node go', () => !server.isConnected(node), 10_000);
      raw.destroy();
    } finally {
      http.destroy();
      await server.close();
    }
  });

  it('a control plane process exits by itself after server.close(), with a kept-alive inner connection and a raw stream open', async () => {
    const node = 'node-parent';
    const endpoint = await startNodeEndpoint(pki, node);
    const child = startPeer({ role: 'server', node, ca: pki.ca, serving: await pki.tunnelServing(), apiClient: await pki.apiserverClient() });
    const { url } = (await child.next()) as { url: string };
    const client = await pki.nodeClient(node);
    const agent = startTunnelAgent({ url, credentials: () => ({ cert: client.cert, key: client.key, ca: pki.ca }), onStream: (s) => endpoint.server.emit('connection', s), backoff: { initialMs: 50, maxMs: 200 } });
    try {
      const ready = await child.next();
      assert.equal(ready.exited, undefined, child.out());
      assert.deepEqual(ready.stats, { agents: 1, streams: 2 });
      const disconnected = collect(agent, 'disconnected');
      child.close();
      assert.deepEqual((await child.next()).stats, { agents: 0, streams: 0 });
      assert.equal(await child.exited(20_000), 0, child.out());
      assert.doesNotMatch(child.out(), /still running/);
      await waitFor('the agent to see the server go', () => disconnected.length > 0, 10_000);
      assert.match(String(disconnected[0].args[0]), /shutting down/);
    } finally {
      await agent.close();
      endpoint.close();
    }
  });
});
