// A rotation survives kill -9 at every phase boundary, of every process kind: the host is killed (by failpoints, as
// etcd's gofail) right after it records each phase, the CA service and a node agent are killed in the middle; after
// each restart the rotation goes on from what was recorded and finishes, with no node stranded.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { FleetCluster } from '../../src/fleet/api.js';
import { waitFor } from '../../src/util/wait.js';
import { startCaChild } from '../ca/helpers.js';
import { exited, killChild, tp, tpSpawn } from '../helpers/cli.js';
import { ClusterWithNodes, proxiedHealthz } from '../helpers/cluster-nodes.js';
import { startHostChild } from '../helpers/control-plane.js';

const NODES = ['k-a', 'k-b'];
const HOST_ARGS = ['--lifetime-check-interval', '1s'];

describe('credential rotation through kill -9 of the host at each phase, of the CA service and of an agent (real processes)', () => {
  const env = new ClusterWithNodes('tp-e2e-rotation-crash-');
  const { tmp, dataDir } = env;
  after(() => env.cleanup());

  test('the rotation finishes, every node on the new generation, none cut off', async () => {
    const cp = await env.start({ hostArgs: HOST_ARGS });
    const f = cp.fleet();
    await f.create({ name: 'crash' });
    for (const name of NODES) await env.join('crash', name);
    const describeIt = () => {
      const r = tp(['clusters', 'describe', 'crash', '--data-dir', dataDir, '-o', 'json']);
      return r.status === 0 ? (JSON.parse(r.stdout) as FleetCluster) : undefined;
    };
    /** Restarts the host with the failpoint armed (or none), and, when armed, waits for it to fire. */
    const hostWith = async (failpoint: string | undefined) => {
      await cp.host.stop('SIGKILL').catch(() => undefined);
      cp.host = await startHostChild(dataDir, HOST_ARGS, failpoint ? { TRUSTPLANE_FAILPOINTS: failpoint } : {});
    };
    const firedAt = async (failpoint: string) => {
      const code = await exited(cp.host.child, 60000).catch((e: Error) => {
        throw new Error(`failpoint ${failpoint} did not fire: ${e.message}\n${cp.host.output().slice(-3000)}`);
      });
      assert.equal(code, 'SIGKILL', `the host died at ${failpoint}: ${cp.host.output().slice(-2000)}`);
      assert.match(cp.host.output(), new RegExp(`failpoint ${failpoint.replace('.', '\\.')}`));
    };
    const healthz = proxiedHealthz;
    const adminApi = async () => (await env.admin('crash')).client;
    let api = await adminApi();
    await waitFor('the nodes through their tunnels', async () => ((await healthz(api, 'k-a')) === 'ok' && (await healthz(api, 'k-b')) === 'ok' ? true : undefined), 60000, 200);

    // Start, with the host dying right after recording "preparing", then after "activating", then after "moving".
    await hostWith('rotation.preparing');
    // Asked again while the restarted host has not started the cluster yet.
    const start = await waitFor('the start to be asked for', () => {
      const r = tp(['clusters', 'update', 'crash', '--start-credential-rotation', '--data-dir', dataDir]);
      return /is not serving/.test(r.stderr) ? undefined : r;
    }, 60000, 250);
    assert.notEqual(start.status, 0, 'the host died under the command');
    await firedAt('rotation.preparing');
    await hostWith('rotation.activating');
    await firedAt('rotation.activating');
    // The CA service dies too, with the host down; both come back.
    await cp.ca.stop('SIGKILL');
    cp.ca = await startCaChild(dataDir);
    await hostWith('rotation.moving');
    await firedAt('rotation.moving');
    await hostWith(undefined);
    api = await waitFor('admin credentials from the restarted host', () => adminApi().catch(() => undefined), 60000, 250);
    const moving = await waitFor('the rotation to be in phase moving', () => (describeIt()?.rotation?.phase === 'moving' ? describeIt() : undefined), 60000, 250);
    assert.deepEqual(moving!.rotation!.history.map((h) => h.phase), ['preparing', 'activating', 'moving']);
    assert.deepEqual(moving!.authorities.find((a) => a.kind === 'root')!.generations.map((g) => g.state), ['previous', 'active'], 'exactly one new generation');

    // A node agent killed while nodes move comes back on its stored credentials and moves too.
    await killChild(env.agents.get('k-a')!.child, 'SIGKILL');
    env.agents.set('k-a', tpSpawn(['node', 'start', '--node-data-dir', join(tmp.path, 'k-a')]));
    await waitFor('the restarted agent through its tunnel', async () => ((await healthz(api, 'k-a')) === 'ok' ? true : undefined), 60000, 200);

    // Complete, with the host dying after recording "completing", then after "done".
    const complete = async () => {
      await hostWith('rotation.completing');
      await waitFor('completion to be allowed (every node moved) and asked for', () => {
        const r = tp(['clusters', 'update', 'crash', '--complete-credential-rotation', '--data-dir', dataDir]);
        // Refused while nodes lag (their credentials, or their connections still seen on the old generation: observed
        // clients), or while the restarted host has not started the cluster yet: ask again. Anything else is the host
        // dying under the command (the failpoint), which firedAt checks.
        if (/still hold only credentials|presented generation 1|is not serving/.test(r.stderr)) return undefined;
        return true;
      }, 60000, 500);
    };
    await complete().catch((e: Error) => {
      const logs = NODES.map((n) => `--- ${n}\n` + readFileSync(join(tmp.path, n, 'agent.log'), 'utf8').split('\n').filter((l) => !/tunnel agent: connection attempt failed/.test(l)).slice(-12).join('\n'));
      throw new Error(`${e.message}\n${logs.join('\n')}\n--- host\n${cp.host.output().split('\n').filter((l) => /approv|laggard|still hold|Signed|sign/i.test(l)).slice(-10).join('\n')}`);
    });
    await firedAt('rotation.completing');
    await hostWith('rotation.done');
    await firedAt('rotation.done');
    await hostWith(undefined);

    const done = await waitFor('the cluster to serve after the rotation', () => {
      const c = describeIt();
      return c?.status === 'RUNNING' ? c : undefined;
    }, 60000, 250);
    assert.equal(done!.rotation!.phase, 'done');
    assert.equal(done!.rotation!.forced, undefined, 'no node was cut off');
    assert.deepEqual(done!.authorities.find((a) => a.kind === 'root')!.generations.map((g) => [g.state, g.hasKey]), [['retired', false], ['active', true]]);
    api = await waitFor('admin credentials from the restarted host', () => adminApi().catch(() => undefined), 60000, 250);
    await waitFor('both nodes through their tunnels on the new generation', async () => ((await healthz(api, 'k-a')) === 'ok' && (await healthz(api, 'k-b')) === 'ok' ? true : undefined), 60000, 250);
    for (const [name, a] of env.agents) assert.equal(a.child.exitCode, null, `agent ${name} is running`);
  });
});
