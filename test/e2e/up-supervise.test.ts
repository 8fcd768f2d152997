// `trustplane up` supervises its CA service and control plane host (real processes): either one killed with -9 is
// restarted with the message saying so, the nodes stay Ready through it, the cluster serves again; Ctrl-C still stops
// everything and leaves no child behind.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { Node } from '../../src/apiserver/index.js';
import { caPaths, clusterPaths, hostPaths } from '../../src/util/datadir.js';
import { waitFor } from '../../src/util/wait.js';
import { isAlive, killChild, tp, tpSpawn } from '../helpers/cli.js';
import { scrapeMetrics } from '../helpers/metrics.js';
import { tempDir } from '../helpers/tmp.js';

const KUBECTL = '/usr/bin/kubectl';

function childPids(parent: number): number[] {
  const r = spawnSync('ps', ['-o', 'pid=', '--ppid', String(parent)], { encoding: 'utf8' });
  return r.stdout.split('\n').map((s) => Number(s.trim())).filter((n) => n > 0);
}

const ready = (n: Node) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
const endpointOf = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as { url: string; pid: number };

describe('up supervises the CA service and the host (real processes)', () => {
  const tmp = tempDir('tp-e2e-up-supervise-');
  after(() => tmp.remove());

  test('kill -9 of the CA service, then of the host: each restarted and reported, nodes Ready throughout, SIGINT leaves no child', async () => {
    const dataDir = join(tmp.path, 'data');
    const kubeconfig = clusterPaths(dataDir, 'demo').adminKubeconfig;
    const kubectl = (args: string[]) =>
      spawnSync(KUBECTL, ['--kubeconfig', kubeconfig, '--cache-dir', mkdtempSync(join(tmp.path, 'kc-')), '--request-timeout', '10s', ...args], { encoding: 'utf8', timeout: 30000 });
    const readyNodes = () => {
      const r = kubectl(['get', 'nodes', '-o', 'json']);
      if (r.status !== 0) return undefined;
      const items = (JSON.parse(r.stdout) as { items: Node[] }).items;
      return items.length === 2 && items.every(ready) ? items.map((n) => n.metadata.name).sort() : undefined;
    };
    /** `nodes list` gets a fresh admin certificate from the host, which asks the CA service: both must answer. */
    const nodesListed = () => {
      const r = tp(['nodes', 'list', '--data-dir', dataDir, '-o', 'json']);
      return r.status === 0 ? (JSON.parse(r.stdout) as { nodes: { name: string; ready: string }[] }).nodes.map((n) => `${n.name} ${n.ready}`) : undefined;
    };
    const up = tpSpawn(['up', '--data-dir', dataDir, '--nodes', '2']);
    const seen = new Set<number>();
    try {
      const state = await waitFor('up to be ready', () => (up.child.exitCode !== null ? 'exited' : /Press Ctrl-C to stop/.test(up.output()) ? 'ready' : undefined), 180000).catch(
        (e: Error) => `${e.message}`,
      );
      assert.equal(state, 'ready', up.output());
      for (const p of childPids(up.child.pid!)) seen.add(p);
      assert.equal(seen.size, 4, `the CA, the host and two agents: ${up.output()}`);
      assert.deepEqual(readyNodes(), ['demo-node-1', 'demo-node-2']);
      const metricsUrl = /Prometheus metrics .*: (https:\/\/\S+)/.exec(up.output())?.[1];
      assert.ok(metricsUrl, up.output());
      assert.match(up.output(), /curl --cacert \S+service-ca\.crt -H "Authorization: Bearer \$\(cat \S+metrics-token\)"/);

      // The CA service: the PID up reports is the one in its PID file.
      const caPid = Number(/the CA service is running \(pid (\d+)\)/.exec(up.output())?.[1]);
      assert.equal(Number(readFileSync(caPaths(dataDir).pid, 'utf8')), caPid);
      const caUrl = endpointOf(caPaths(dataDir).endpoint).url;
      process.kill(caPid, 'SIGKILL');
      const newCa = await waitFor('the CA service to be restarted', () => {
        const m = /the CA service restarted \(pid (\d+)\)/.exec(up.output());
        return m ? Number(m[1]) : undefined;
      }, 60000, 100);
      seen.add(newCa);
      assert.match(up.output(), /the CA service exited \(signal SIGKILL\); restarting in 1 s/);
      assert.notEqual(newCa, caPid);
      assert.equal(endpointOf(caPaths(dataDir).endpoint).url, caUrl, 'the CA service came back on its port');
      // The nodes never noticed: they talk to the host, and the host to the restarted CA service on the same port.
      assert.deepEqual(readyNodes(), ['demo-node-1', 'demo-node-2']);
      assert.deepEqual(await waitFor('the host to reach the restarted CA service', nodesListed, 30000, 200), ['demo-node-1 Ready', 'demo-node-2 Ready']);

      // The host.
      const hostPid = endpointOf(hostPaths(dataDir).endpoint).pid;
      assert.match(up.output(), new RegExp(`the control plane host is running \\(pid ${hostPid}\\)`));
      process.kill(hostPid, 'SIGKILL');
      const newHost = await waitFor('the host to be restarted', () => {
        const m = /the control plane host restarted \(pid (\d+)\)/.exec(up.output());
        return m ? Number(m[1]) : undefined;
      }, 60000, 100);
      seen.add(newHost);
      assert.match(up.output(), /the control plane host exited \(signal SIGKILL\); restarting in 1 s/);
      // The cluster serves again on the kubeconfig up printed, and the nodes come back to it by themselves.
      assert.deepEqual(await waitFor('the nodes Ready through the restarted host', readyNodes, 90000, 250), ['demo-node-1', 'demo-node-2']);
      assert.deepEqual(await waitFor('nodes list through the restarted host', nodesListed, 30000, 200), ['demo-node-1 Ready', 'demo-node-2 Ready']);
      // The metrics URL up printed still holds.
      assert.equal(endpointOf(hostPaths(dataDir).endpoint).pid, newHost);
      assert.equal((JSON.parse(readFileSync(hostPaths(dataDir).endpoint, 'utf8')) as { metricsUrl: string }).metricsUrl, metricsUrl);
      assert.equal((await scrapeMetrics(dataDir, 'token')).status, 200);
      for (const p of childPids(up.child.pid!)) seen.add(p);
      assert.equal(childPids(up.child.pid!).length, 4, 'still the CA, the host and two agents');

      up.child.kill('SIGINT');
      await waitFor('up to exit', () => up.child.exitCode !== null || undefined, 60000);
      assert.equal(up.child.exitCode, 0, up.output());
      for (const p of seen) assert.equal(isAlive(p), false, `child ${p} stopped with up`);
    } finally {
      await killChild(up.child, 'SIGTERM').catch(() => killChild(up.child));
      for (const p of seen) if (isAlive(p)) process.kill(p, 'SIGKILL');
    }
  });
});
