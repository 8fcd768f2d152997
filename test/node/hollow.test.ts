// Hollow nodes against a real control plane (CA service and host as their own processes): 20 nodes join with their own
// keys and certificates, are Ready, hold Leases, answer /healthz through the API server and the tunnel, and leave nothing open.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Lease } from '../../src/apiserver/registry/lease.js';
import type { Node } from '../../src/apiserver/registry/node.js';
import { adminKubeconfigEntry } from '../../src/cli/clusters.js';
import type { FleetClient } from '../../src/fleet/client.js';
import { startHollowNodes, type HollowProgress } from '../../src/node/hollow.js';
import { parseCertificates, verifyChain } from '../../src/pki/index.js';
import { waitFor } from '../../src/util/wait.js';
import { BIN, exited, killChild } from '../helpers/cli.js';
import { startControlPlane, type ControlPlane } from '../helpers/control-plane.js';
import { tempDir } from '../helpers/tmp.js';

const CLUSTER = 'hollow';

/** `trustplane nodes simulate ...` as a user runs it: the real CLI in a child process. */
function simulate(args: string[], onStderr?: (child: ChildProcess, stderr: string) => void): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, 'nodes', 'simulate', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => {
    stderr += d;
    onStderr?.(child, stderr);
  });
  return exited(child, 60_000).then(
    (code) => ({ code: typeof code === 'number' ? code : null, stdout, stderr }),
    async (e) => {
      await killChild(child);
      throw e;
    },
  );
}

interface Admin {
  server: string;
  caBundle: string;
  clientCert: string;
  clientKey: string;
}

function adminGet(a: Admin, path: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, a.server), { ca: a.caBundle, cert: a.clientCert, key: a.clientKey, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Sockets, servers and timers this process holds: what close() must give back. */
function openHandles(): string[] {
  return process.getActiveResourcesInfo().filter((r) => r !== 'FSReqCallback' && r !== 'TTYWrap' && r !== 'PipeWrap');
}

describe('hollow nodes (real CA and host processes)', () => {
  const tmp = tempDir('tp-hollow-');
  const dataDir = join(tmp.path, 'data');
  let cp: ControlPlane;
  let fleet: FleetClient;
  let admin: Admin;

  before(async () => {
    cp = await startControlPlane(dataDir);
    fleet = cp.fleet();
    await fleet.create({ name: CLUSTER });
    admin = await adminKubeconfigEntry(fleet, CLUSTER);
  });
  after(async () => {
    await cp?.stop();
    tmp.remove();
  });

  it('20 hollow nodes join: distinct keys and certificates, Ready Nodes, Leases, /healthz through the tunnel; close() leaves nothing open', async () => {
    const t = await fleet.bootstrapToken(CLUSTER, 'default-pool', { ttlSeconds: 3600 });
    const before = openHandles().length;
    const seen: HollowProgress[] = [];
    const h = await startHollowNodes({ server: t.server, token: t.token, caCertHash: t.caCertHash, count: 20, namePrefix: 'h-', concurrency: 8, leaseIntervalMs: 1000, onProgress: (p) => seen.push(p) });
    try {
      const s = await h.joined;
      assert.equal(s.failed, 0, s.errors.join('\n'));
      assert.equal(s.ready, 20);
      assert.ok(seen.length >= 20 && seen.at(-1)!.done && seen.at(-1)!.ready === 20, 'progress after each node and at the end');
      assert.deepEqual(h.names.slice(0, 3), ['h-00', 'h-01', 'h-02']);

      // Each node its own keys: two certificates per node, 40 distinct public keys, each naming its node.
      const keys = new Set<string>();
      for (const name of h.names) {
        const c = h.certificates(name)!;
        const client = new X509Certificate(c.client!);
        const serving = new X509Certificate(c.serving!);
        assert.equal(client.subject, `O=system:nodes\nCN=system:node:${name}`);
        const [leaf, ...chain] = parseCertificates(c.client!);
        verifyChain(leaf, chain, parseCertificates(h.caBundle), { at: new Date(), purpose: 'clientAuth' });
        assert.match(serving.subjectAltName ?? '', new RegExp(`DNS:${name}`));
        for (const x of [client, serving]) keys.add(x.publicKey.export({ type: 'spki', format: 'der' }).toString('hex'));
        assert.equal(h.node(name)?.phase, 'ready');
        assert.equal(h.node(name)?.tunnelConnected, true);
      }
      assert.equal(keys.size, 40);

      // What the control plane sees: 20 Ready Nodes from the hollow agent version, each with a Lease being renewed.
      const nodes = JSON.parse((await adminGet(admin, '/api/v1/nodes')).text) as { items: Node[] };
      const ours = nodes.items.filter((n) => n.metadata.name.startsWith('h-'));
      assert.equal(ours.length, 20);
      for (const n of ours) {
        assert.equal(n.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
        assert.match(n.status?.nodeInfo?.kubeletVersion ?? '', /^trustplane-node\/.*-hollow$/);
      }
      const leasePath = '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases';
      const first = JSON.parse((await adminGet(admin, `${leasePath}/h-07`)).text) as Lease;
      assert.equal(first.spec?.holderIdentity, 'h-07');
      await waitFor('h-07 to renew its Lease', async () => {
        const l = JSON.parse((await adminGet(admin, `${leasePath}/h-07`)).text) as Lease;
        return l.spec?.renewTime !== first.spec?.renewTime || undefined;
      }, 10_000);
      assert.ok(h.leaseStats().renewals > 0);

      // The API server reaches each sampled node endpoint only through its tunnel, TLS end to end.
      for (const name of ['h-00', 'h-09', 'h-19']) {
        assert.deepEqual(await adminGet(admin, `/api/v1/nodes/${name}/proxy/healthz`), { status: 200, text: 'ok' });
      }
      const configz = JSON.parse((await adminGet(admin, '/api/v1/nodes/h-05/proxy/configz')).text) as { nodeName: string; hollow: boolean };
      assert.deepEqual([configz.nodeName, configz.hollow], ['h-05', true]);
    } finally {
      await h.close();
    }
    assert.equal(h.node('h-00')?.phase, 'stopped');
    await waitFor('every socket of the hollow nodes to close', () => (openHandles().length <= before ? true : undefined), 10_000).catch(() => {
      assert.fail(`handles left open: before ${before}, now ${openHandles().join(', ')}`);
    });
    // Their tunnels are gone: the API server cannot reach them any more.
    const gone = await adminGet(admin, '/api/v1/nodes/h-00/proxy/healthz');
    assert.notEqual(gone.status, 200);
  });

  it('close() during the joins stops them at once and leaves nothing open', async () => {
    const t = await fleet.bootstrapToken(CLUSTER, 'default-pool', { ttlSeconds: 3600 });
    const before = openHandles().length;
    const h = await startHollowNodes({ server: t.server, token: t.token, caCertHash: t.caCertHash, count: 200, namePrefix: 'early-', concurrency: 16 });
    await waitFor('a first node to be ready', () => (h.progress().ready > 0 ? true : undefined), 30_000);
    await h.close();
    const s = await h.joined;
    assert.ok(s.done && s.ready < 200, `ready ${s.ready}`);
    assert.equal(s.failed, 0, s.errors.join('\n'));
    await waitFor('every socket to close', () => (openHandles().length <= before ? true : undefined), 10_000).catch(() => {
      assert.fail(`handles left open: before ${before}, now ${openHandles().join(', ')}`);
    });
  });

  it('`trustplane nodes simulate --cluster` (the real CLI): progress, summary, stops on --duration and on SIGTERM', async () => {
    const timed = await simulate(['--count', '5', '--cluster', CLUSTER, '--name-prefix', 'sim-', '--duration', '4s', '--data-dir', dataDir, '-o', 'json']);
    assert.equal(timed.code, 0, timed.stderr);
    const summary = JSON.parse(timed.stdout) as { ready: number; failed: number; count: number; joinRatePerSecond: number; namePrefix: string };
    assert.deepEqual([summary.count, summary.ready, summary.failed, summary.namePrefix], [5, 5, 0, 'sim-']);
    assert.ok(summary.joinRatePerSecond > 0);
    assert.match(timed.stderr, /Joining 5 hollow nodes \(sim-\*\) to https:\/\/127\.0\.0\.1:\d+/);
    assert.match(timed.stderr, /\[\d+s\] ready \d\/5 \(\+\d+\/s\), failed 0/);
    const nodes = JSON.parse((await adminGet(admin, '/api/v1/nodes')).text) as { items: Node[] };
    assert.equal(nodes.items.filter((n) => n.metadata.name.startsWith('sim-')).length, 5);

    // Without --duration it runs until SIGTERM, then stops every node and prints the summary.
    const running = await simulate(['--count', '3', '--cluster', CLUSTER, '--data-dir', dataDir], (child, stderr) => {
      if (/Running; Ctrl-C stops the hollow nodes/.test(stderr)) child.kill('SIGTERM');
    });
    assert.equal(running.code, 0, running.stderr);
    assert.match(running.stdout, /Hollow nodes: 3 ready, 0 failed of 3 in [\d.]+s .*\nStopped 3 hollow nodes\.\n/);

    const noCluster = await simulate(['--count', '5', '--data-dir', dataDir]);
    assert.equal(noCluster.code, 2);
    assert.match(noCluster.stderr, /error: say which cluster the hollow nodes join\nhint: pass --cluster NAME/);
    const badCount = await simulate(['--count', 'x', '--cluster', CLUSTER, '--data-dir', dataDir]);
    assert.equal(badCount.code, 2);
    assert.match(badCount.stderr, /--count x is not a whole number/);
  });
});
