// Revoking one node's credentials with real processes: `trustplane nodes revoke` makes the API server and the tunnel
// server refuse that node at once (its own certificate, read from its data dir, gets 401; its tunnel is cut and stays
// out), marks its Node, leaves the other node untouched, and lets it back only with a token made after the revocation.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { Node } from '../../src/apiserver/index.js';
import { isApiError } from '../../src/node/api-client.js';
import { nodePaths, splitCredential } from '../../src/node/state.js';
import { waitFor } from '../../src/util/wait.js';
import { exited, tp } from '../helpers/cli.js';
import { ClusterWithNodes, proxiedHealthz } from '../helpers/cluster-nodes.js';
import { tcpConnections } from '../helpers/sockets.js';

describe('revocation of one node credential (real processes)', () => {
  const env = new ClusterWithNodes('tp-e2e-revoke-');
  const { tmp, dataDir } = env;
  after(() => env.cleanup());

  test('the revoked node is refused at once, its Node marked, the other node unaffected; joining again needs a newer token', async () => {
    const cp = await env.start();
    const f = cp.fleet();
    await f.create({ name: 'rv' });
    for (const name of ['bad', 'good']) await env.join('rv', name);
    // A reusable pool token made before the revocation, as a stolen node might hold.
    const before = await f.bootstrapToken('rv', 'default-pool', { ttlSeconds: 600 });
    const { client: admin, entry: e } = await env.admin('rv');
    const healthz = (node: string) => proxiedHealthz(admin, node);
    await waitFor('both nodes reachable through their tunnels', async () => ((await healthz('bad')) === 'ok' && (await healthz('good')) === 'ok' ? true : undefined), 60000, 200);

    // The node's own credential, as the node holds it.
    const asNode = (name: string) => {
      const cred = splitCredential(readFileSync(nodePaths(join(tmp.path, name)).credential('client'), 'utf8'), name);
      return env.client(e.server, cred.cert, cred.key, e.caBundle);
    };
    const bad = asNode('bad');
    const good = asNode('good');
    await bad.get(`/api/v1/nodes/bad`); // works now, on a kept-alive connection

    const r = tp(['nodes', 'revoke', 'bad', '--cluster', 'rv', '--yes', '--data-dir', dataDir, '-o', 'json']);
    assert.equal(r.status, 0, r.stderr);
    const revoked = JSON.parse(r.stdout);
    assert.equal(revoked.node, 'bad');
    assert.ok(revoked.serials.length >= 1);
    assert.equal(revoked.nodeMarked, true);

    // Its very next request fails, on the same connection; the other node goes on.
    await assert.rejects(bad.get('/api/v1/nodes/bad'), (err: unknown) => isApiError(err, 401));
    await good.get('/api/v1/nodes/good');
    assert.equal(await healthz('good'), 'ok');
    await waitFor('the revoked node to be cut off the tunnel', async () => ((await healthz('bad')).startsWith('error') ? true : undefined), 10000, 100);
    // Its agent dials again (with backoff) and is refused: seen from outside as a new connection of its process to the
    // tunnel port that the server closes. Accepted, it would stay open.
    const badPid = env.agents.get('bad')!.child.pid!;
    const tunnelPort = Number(new URL((JSON.parse(readFileSync(nodePaths(join(tmp.path, 'bad')).config, 'utf8')) as { tunnelServer: string }).tunnelServer).port);
    const toTunnel = () => tcpConnections(badPid).filter((c) => c.remotePort === tunnelPort).map((c) => c.inode);
    const cut = new Set(toTunnel());
    const redial = await waitFor('the revoked agent to dial the tunnel again', () => toTunnel().find((i) => !cut.has(i)), 20000, 5);
    await waitFor('the tunnel server to close that connection', () => !toTunnel().includes(redial) || undefined, 20000, 5);
    assert.match(await healthz('bad'), /^error: .*cannot be reached through the tunnel/);
    assert.equal(await healthz('good'), 'ok');

    const node = await admin.get<Node>('/api/v1/nodes/bad');
    assert.equal(node.status?.conditions?.find((c) => c.type === 'Ready')?.reason, 'CredentialRevoked');
    assert.ok(node.spec?.taints?.some((t) => t.key === 'trustplane.io/credential-revoked'));
    assert.ok(node.metadata.annotations?.['trustplane.io/credential-revoked-at']);
    const list = JSON.parse(tp(['nodes', 'list', '--cluster', 'rv', '--data-dir', dataDir, '-o', 'json']).stdout) as { nodes: Array<{ name: string; ready: string }> };
    assert.equal(list.nodes.find((n) => n.name === 'bad')?.ready, 'NotReady');

    // Joining again: a token made before the revocation is not enough (its CSR waits for an administrator) ...
    const again = await env.join('rv', 'bad', { token: before, dir: 'bad-again', args: ['--wait-timeout', '5s'] });
    const code = await exited(again.child, 30000);
    assert.notEqual(code, 0);
    assert.match(again.output(), /revoked at .*only with a bootstrap token made after that/);
    // ... a new one is.
    const fresh = await f.bootstrapToken('rv', 'default-pool', { nodeName: 'bad', ttlSeconds: 600 });
    const back = await env.join('rv', 'bad', { token: fresh, dir: 'bad-new' });
    await waitFor('the node back, with a new credential, through its tunnel', async () => ((await healthz('bad')) === 'ok' ? true : undefined), 60000, 200).catch((err: Error) => {
      throw new Error(`${err.message}\n${back.output()}\nhealthz: ${healthz('bad')}`);
    });
    await assert.rejects(bad.get('/api/v1/nodes/bad'), (err: unknown) => isApiError(err, 401), 'the revoked certificate stays refused');
  });
});
