// Nodes end to end with real processes: `up` joins three node agents; kubectl sees them Ready; `trustplane nodes logs`
// and `nodes health` reach them only through the reverse tunnel; a second `up` resumes them without a new join; and a
// control plane host killed with -9 is rejoined by its agents by themselves.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { CertificateSigningRequest, Node } from '../../src/apiserver/index.js';
import type { ApiClient } from '../../src/node/api-client.js';
import { caPaths, clusterPaths, hostPaths } from '../../src/util/datadir.js';
import { waitFor } from '../../src/util/wait.js';
import { isAlive, killChild, tp, tpSpawn } from '../helpers/cli.js';
import { ClusterWithNodes, proxiedHealthz } from '../helpers/cluster-nodes.js';
import { tempDir } from '../helpers/tmp.js';

const KUBECTL = '/usr/bin/kubectl';

/** Inodes of the TCP sockets in LISTEN state on this machine (IPv4 and IPv6). */
function listeningInodes(): Set<string> {
  const out = new Set<string>();
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(f)) continue;
    for (const line of readFileSync(f, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[3] === '0A') out.add(cols[9]);
    }
  }
  return out;
}

/** Whether a process holds a listening TCP socket. */
function listens(pid: number): boolean {
  const listening = listeningInodes();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m && listening.has(m[1])) return true;
  }
  return false;
}

function childPids(parent: number): number[] {
  const r = spawnSync('ps', ['-o', 'pid=', '--ppid', String(parent)], { encoding: 'utf8' });
  return r.stdout.split('\n').map((s) => Number(s.trim())).filter((n) => n > 0);
}

const ready = (n: Node) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

describe('nodes end to end: up --nodes 3, kubectl, nodes logs/health through the tunnel (real processes)', () => {
  const tmp = tempDir('tp-e2e-nodes-');
  after(() => tmp.remove());

  test('three agents join and are Ready; logs and health come through the tunnel; the nodes listen on no port; a second up resumes them', async () => {
    const dataDir = join(tmp.path, 'data');
    const kubeconfig = clusterPaths(dataDir, 'demo').adminKubeconfig;
    const kubectl = (args: string[]) => {
      const r = spawnSync(KUBECTL, ['--kubeconfig', kubeconfig, '--cache-dir', mkdtempSync(join(tmp.path, 'kc-')), ...args], { encoding: 'utf8', timeout: 30000 });
      assert.equal(r.status, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    const tpd = (args: string[]) => tp([...args, '--data-dir', dataDir]);
    let clientCsrs = 0;
    for (const round of [1, 2]) {
      const up = tpSpawn(['up', '--data-dir', dataDir, '--nodes', '3']);
      let pids: number[] = [];
      try {
        await waitFor('up to be ready', () => /Press Ctrl-C to stop/.test(up.output()) || undefined, 120000);
        pids = childPids(up.child.pid!);
        assert.equal(pids.length, 5, `up runs the CA, the host and three agents: ${up.output()}`);
        assert.match(up.output(), round === 1 ? /3 node\(s\) joining, 0 starting/ : /0 node\(s\) joining, 3 starting on their credentials/);
        assert.match(up.output(), /\(3\/3\)/);
        assert.match(up.output(), /trustplane --data-dir .* nodes logs demo-node-1/);

        const nodes = JSON.parse(kubectl(['get', 'nodes', '-o', 'json'])) as { items: Node[] };
        assert.deepEqual(nodes.items.map((n) => n.metadata.name).sort(), ['demo-node-1', 'demo-node-2', 'demo-node-3']);
        for (const n of nodes.items) assert.ok(ready(n), `${n.metadata.name} is Ready`);
        assert.match(kubectl(['get', 'nodes']), /demo-node-2\s+Ready/);

        // A second up joins nothing again: the kubelet-client CSRs are the three of the first join.
        const csrs = JSON.parse(kubectl(['get', 'csr', '-o', 'json'])) as { items: CertificateSigningRequest[] };
        const client = csrs.items.filter((c) => c.spec.signerName === 'kubernetes.io/kube-apiserver-client-kubelet').length;
        if (round === 1) clientCsrs = client;
        else assert.equal(client, clientCsrs, 'no node joined again');
        assert.equal(clientCsrs, 3);

        const list = tpd(['nodes', 'list', '-o', 'json']);
        assert.equal(list.status, 0, list.stderr);
        assert.deepEqual(
          (JSON.parse(list.stdout) as { nodes: { name: string; ready: string }[] }).nodes.map((n) => [n.name, n.ready]),
          [['demo-node-1', 'Ready'], ['demo-node-2', 'Ready'], ['demo-node-3', 'Ready']],
        );

        const health = tpd(['nodes', 'health', 'demo-node-2', '-o', 'json']);
        assert.equal(health.status, 0, health.stderr);
        assert.equal(JSON.parse(health.stdout).healthy, true);
        const logs = tpd(['nodes', 'logs', 'demo-node-1', '--tail', '50']);
        assert.equal(logs.status, 0, logs.stderr);
        assert.match(logs.stdout, /"node":"demo-node-1".*"msg":"node agent running"/);
        assert.ok(logs.stdout.trim().split('\n').length <= 50);
        const logsJson = tpd(['nodes', 'logs', 'demo-node-1', '--tail', '3', '-o', 'json']);
        assert.equal(logsJson.status, 0, logsJson.stderr);
        assert.equal(JSON.parse(logsJson.stdout).lines.length, 3);

        // The node agents listen on no TCP port: the API server reached them through the tunnels they dialled.
        const agents = pids.filter((p) => /node (join|start)/.test(readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ')));
        assert.equal(agents.length, 3);
        for (const p of agents) assert.equal(listens(p), false, `agent ${p} listens on no port`);
        // The check itself sees listeners: the CA service and the host have theirs.
        for (const p of pids.filter((x) => !agents.includes(x))) assert.equal(listens(p), true, `server ${p} listens`);
        // Nor does the process list show a bootstrap token.
        for (const p of agents) assert.doesNotMatch(readFileSync(`/proc/${p}/cmdline`, 'utf8'), /[a-z0-9]{6}\.[a-z0-9]{16}/);

        const bad = tpd(['nodes', 'logs', 'no-such-node']);
        assert.equal(bad.status, 4);
        assert.match(bad.stderr, /nodes "no-such-node" not found/);
        const badTail = tpd(['nodes', 'logs', 'demo-node-1', '--tail', 'lots']);
        assert.equal(badTail.status, 2);
        assert.match(badTail.stderr, /--tail must be a whole number/);

        up.child.kill('SIGTERM');
        await waitFor('up to exit', () => up.child.exitCode !== null || undefined, 30000);
        assert.equal(up.child.exitCode, 0, up.output());
        for (const p of pids) assert.equal(isAlive(p), false, `child ${p} stopped with up`);
      } finally {
        await killChild(up.child, 'SIGTERM').catch(() => killChild(up.child));
        for (const p of pids) if (isAlive(p)) process.kill(p, 'SIGKILL');
      }
    }
  });
});

describe('nodes survive a control plane host killed with -9 (real processes)', () => {
  const env = new ClusterWithNodes('tp-e2e-nodes-kill-');
  after(() => env.cleanup());

  test('agents reconnect their tunnels after the restart, on the same credentials and processes: nothing re-joins', async () => {
    const cp = await env.start();
    await cp.fleet().create({ name: 'k9' });
    for (const name of ['k9-a', 'k9-b']) await env.join('k9', name);
    const healthy = async (api: ApiClient, node: string) => (await proxiedHealthz(api, node)) === 'ok';
    let api = (await env.admin('k9')).client;
    await waitFor('both nodes to answer through the tunnel', async () => ((await healthy(api, 'k9-a')) && (await healthy(api, 'k9-b')) ? true : undefined), 60000, 200);
    const before = (await api.get<{ items: CertificateSigningRequest[] }>('/apis/certificates.k8s.io/v1/certificatesigningrequests')).items.map((c) => c.metadata.name).sort();

    const oldHost = cp.host.child.pid!;
    await cp.restartHost('SIGKILL');
    assert.notEqual(cp.host.child.pid, oldHost);
    assert.ok(existsSync(hostPaths(env.dataDir).endpoint) && existsSync(caPaths(env.dataDir).endpoint));
    await waitFor('the cluster to run again', async () => ((await cp.fleet().describe('k9')).status === 'RUNNING' ? true : undefined), 60000, 200);
    api = (await env.admin('k9')).client;
    // The API server and tunnel server came back on their persisted ports; the agents' backoff brings them back.
    await waitFor('both nodes to answer through their tunnels again', async () => ((await healthy(api, 'k9-a')) && (await healthy(api, 'k9-b')) ? true : undefined), 60000, 200);
    for (const a of env.agents.values()) assert.equal(a.child.exitCode, null, 'the agent process kept running');
    const after = (await api.get<{ items: CertificateSigningRequest[] }>('/apis/certificates.k8s.io/v1/certificatesigningrequests')).items.map((c) => c.metadata.name).sort();
    assert.deepEqual(after, before, 'no new CSR: nothing joined again');
    const nodes = await api.get<{ items: Node[] }>('/api/v1/nodes');
    assert.ok(nodes.items.every(ready));
  });
});
