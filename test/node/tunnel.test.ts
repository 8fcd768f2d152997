// The node endpoint through the reverse tunnel (TLS end to end inside it), joining with --ca-file, and the CLI commands.
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { connect } from 'node:tls';
import { Command } from 'commander';
import type { Node } from '../../src/apiserver/index.js';
import { registerNodeCommands } from '../../src/cli/node.js';
import { joinNode, type NodeAgent } from '../../src/node/agent.js';
import { startTunnelServer, type TunnelServer } from '../../src/tunnel/server.js';
import { TrustplaneError } from '../../src/util/errors.js';
import { waitFor } from '../../src/util/wait.js';
import { tempDir } from '../helpers/tmp.js';
import { writeIn } from '../apiserver/harness.js';
import { startNodeTestCluster, type NodeTestCluster } from './cluster.js';

/** A GET to the node's endpoint over a tunnel stream: TLS with the node's serving certificate, our client certificate. */
function getThroughTunnel(stream: Duplex, node: string, path: string, creds: { cert: string; key: string }, ca: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: node,
        path,
        // No agent: the request runs on the one connection createConnection makes.
        createConnection: () => connect({ socket: stream, servername: node, ca, cert: creds.cert, key: creds.key, minVersion: 'TLSv1.2' }),
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('node agent with the reverse tunnel and the CLI', () => {
  let c: NodeTestCluster;
  let tunnel: TunnelServer;
  let caller: { cert: string; key: string };
  const tmp = tempDir('tp-node-tun-');
  const agents: NodeAgent[] = [];

  before(async () => {
    c = await startNodeTestCluster();
    const serving = await c.issue('trustplane.io/kube-apiserver-serving', [{ type: 'CN', value: 'tunnel-server' }], { dns: [], ip: ['127.0.0.1'] });
    tunnel = await startTunnelServer({ tls: { cert: serving.cert, key: serving.key, clientCa: c.bundle } });
    c.tunnelServer = tunnel.url;
    caller = await c.issue('trustplane.io/control-plane-component', [{ type: 'CN', value: 'system:trustplane:apiserver-kubelet-client' }]);
  });
  after(async () => {
    for (const a of agents) await a.stop();
    await tunnel?.close();
    await c?.stop();
    tmp.remove();
  });

  it('learns the tunnel server from cluster-info, dials it with its client certificate, serves its endpoint through it', async () => {
    const caFile = writeIn(c.base, 'root-ca.pem', c.bundle);
    const agent = await joinNode({ dataDir: join(tmp.path, 'ntun'), server: c.api.url, token: (await c.token()).token, caFile, nodeName: 'ntun', waitTimeoutMs: 30_000 });
    agents.push(agent);
    assert.equal(agent.status().endpoint, null, 'no listening port');
    await tunnel.waitFor('ntun', 10_000);
    await waitFor('the agent to see its tunnel accepted', () => agent.status().tunnel?.connected || undefined, 10_000);
    assert.equal(agent.status().tunnel?.url, tunnel.url);

    const health = await getThroughTunnel(await tunnel.dial('ntun'), 'ntun', '/healthz', caller, c.bundle);
    assert.deepEqual(health, { status: 200, text: 'ok' });
    const configz = JSON.parse((await getThroughTunnel(await tunnel.dial('ntun'), 'ntun', '/configz', caller, c.bundle)).text);
    assert.equal(configz.nodeName, 'ntun');
    assert.equal(configz.tunnelServer, tunnel.url);
    const logs = await getThroughTunnel(await tunnel.dial('ntun'), 'ntun', '/logs?tailLines=1', caller, c.bundle);
    assert.equal(logs.status, 200);
    assert.equal(logs.text.trimEnd().split('\n').length, 1);
  });

  it('`trustplane node join` runs the agent until SIGINT; errors carry the reason, hint and exit code', async () => {
    const program = new Command('trustplane').exitOverride();
    registerNodeCommands(program);
    const dir = join(tmp.path, 'ncli');
    const token = (await c.token()).token;
    const out: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((s: string) => (out.push(String(s)), true)) as typeof process.stdout.write;
    let running: Promise<unknown>;
    try {
      running = program.parseAsync(['node', 'join', '--server', c.api.url, '--token', token, '--ca-cert-hash', c.caCertHash, '--name', 'ncli', '--node-data-dir', dir, '--wait-timeout', '1m'], { from: 'user' });
      running.catch(() => undefined);
      await waitFor('node ncli to be registered and running', async () => (out.join('').includes('Running; Ctrl-C') ? true : undefined), 30_000);
    } finally {
      process.stdout.write = write;
    }
    const node = (await c.call(c.admin, 'GET', '/api/v1/nodes/ncli')).json as Node;
    assert.equal(node.status?.conditions?.find((x) => x.type === 'Ready')?.status, 'True');
    assert.match(out.join(''), /Node ncli is part of the cluster at https:\/\/127\.0\.0\.1:\d+\./);
    process.emit('SIGINT');
    await running!;

    const wrong = new Command('trustplane').exitOverride();
    registerNodeCommands(wrong);
    await assert.rejects(
      wrong.parseAsync(['node', 'join', '--server', c.api.url, '--token', token, '--ca-cert-hash', 'sha256:xyz', '--node-data-dir', join(tmp.path, 'nbad')], { from: 'user' }),
      (e: unknown) => e instanceof TrustplaneError && e.exitCode === 2 && /is not a CA public key hash/.test(e.message) && /sha256:/.test(e.hint ?? ''),
    );
  });
});
