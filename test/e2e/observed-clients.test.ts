// Observed clients hold a rotation's completion (real processes): an old admin credential (an https client) and kubectl
// on an old admin kubeconfig keep polling the API server during a rotation of the cluster root CA; check-credential-
// lifetime and describe name them (and not kubectl on a new kubeconfig); completion is refused naming them; once they
// stop, completion is allowed after the observed window (a short one here); a second rotation shows --force completing
// although a client is still seen.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { adminKubeconfigEntry } from '../../src/cli/clusters.js';
import type { CredentialLifetime, FleetCluster, ObservedClient } from '../../src/fleet/api.js';
import { waitFor } from '../../src/util/wait.js';
import { BIN } from '../helpers/cli.js';
import { ClusterWithNodes } from '../helpers/cluster-nodes.js';

const KUBECTL = '/usr/bin/kubectl';
const WINDOW_S = 4;

describe('observed clients and the completion gate (real processes)', () => {
  const env = new ClusterWithNodes('tp-e2e-observed-');
  const { tmp, dataDir } = env;
  after(() => env.cleanup());

  /** The trustplane command, without blocking this process: the pollers below go on while it runs. */
  const tp = (args: string[]) =>
    new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60000 }, (err, stdout, stderr) =>
        resolve({ status: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
      );
    });
  const tpj = async <T>(args: string[]): Promise<T> => {
    const r = await tp([...args, '--data-dir', dataDir, '-o', 'json']);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as T;
  };
  const complete = (force = false) => tp(['clusters', 'update', 'obs', '--complete-credential-rotation', ...(force ? ['--force'] : []), '--data-dir', dataDir, '-o', 'json']);

  /** An https client with an admin certificate of the cluster's active generation, polling GET /api/v1/nodes until stopped. */
  const poller = async (username: string) => {
    const e = await adminKubeconfigEntry(env.cp.fleet(), 'obs', username);
    const client = env.client(e.server, e.clientCert, e.clientKey, e.caBundle);
    let polling = true;
    let ok = 0;
    const errors: string[] = [];
    const done = (async () => {
      while (polling) {
        await client.get('/api/v1/nodes').then(() => ok++, (err: Error) => errors.push(err.message));
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    return { entry: e, ok: () => ok, errors, stop: () => ((polling = false), done) };
  };
  /** kubectl polling with a kubeconfig (`get nodes` every half second, each run a child process) until stopped. */
  const kubectlPoller = (kubeconfig: string) => {
    let polling = true;
    let ok = 0;
    const errors: string[] = [];
    const done = (async () => {
      while (polling) {
        await new Promise<void>((resolve) =>
          execFile(KUBECTL, ['--kubeconfig', kubeconfig, '--cache-dir', mkdtempSync(join(tmp.path, 'kc-')), 'get', 'nodes'], { timeout: 30000 }, (err, _out, stderr) => {
            if (err) errors.push(String(stderr));
            else ok++;
            resolve();
          }),
        );
        await new Promise((r) => setTimeout(r, 500));
      }
    })();
    return { ok: () => ok, errors, stop: () => ((polling = false), done) };
  };
  const named = (list: ObservedClient[] | undefined, user: string) => (list ?? []).find((c) => c.user === user);

  test('an old admin polling holds completion, named; allowed after the window once it stopped; --force goes past one', async () => {
    await env.start({ hostArgs: ['--observed-window', `${WINDOW_S}s`] });
    await env.cp.fleet().create({ name: 'obs' });
    const old = await poller('old-admin');
    await waitFor('the old admin to be answered', () => (old.ok() > 0 ? true : undefined), 30000, 100);
    // No rotation: nobody is listed.
    assert.deepEqual((await tpj<CredentialLifetime>(['clusters', 'check-credential-lifetime', 'obs'])).observedClients, []);

    const kubectl = (kubeconfig: string) => spawnSync(KUBECTL, ['--kubeconfig', kubeconfig, '--cache-dir', mkdtempSync(join(tmp.path, 'kc-')), 'get', 'nodes'], { encoding: 'utf8', timeout: 30000 });
    const getCredentials = async (username: string, kubeconfig: string) => {
      const r = await tp(['clusters', 'get-credentials', 'obs', '--username', username, '--kubeconfig', kubeconfig, '--data-dir', dataDir]);
      assert.equal(r.status, 0, r.stderr);
    };
    const oldKc = join(tmp.path, 'old.kubeconfig');
    await getCredentials('old-kubectl', oldKc);

    const started = await tpj<FleetCluster>(['clusters', 'update', 'obs', '--start-credential-rotation']);
    assert.equal(started.rotation?.phase, 'moving');
    assert.equal(started.observedWindowSeconds, WINDOW_S);

    // kubectl on the kubeconfig from before the start (generation 1) keeps polling too; kubectl on one issued after
    // the start (generation 2) is seen, but not on the old generation.
    const oldKubectl = kubectlPoller(oldKc);
    const newKc = join(tmp.path, 'new.kubeconfig');
    await getCredentials('new-kubectl', newKc);
    const k2 = kubectl(newKc);
    assert.equal(k2.status, 0, k2.stderr);

    // The polling admin is listed with what was seen of it; the kubectl user on the new generation is not.
    const lifetime = await waitFor('check-credential-lifetime to list the old admin and the old kubectl', async () => {
      const l = await tpj<CredentialLifetime>(['clusters', 'check-credential-lifetime', 'obs']);
      return named(l.observedClients, 'old-admin') && named(l.observedClients, 'old-kubectl') ? l : undefined;
    }, 30000, 300);
    const seen = named(lifetime.observedClients, 'old-admin')!;
    assert.deepEqual({ ...seen, lastSeen: typeof seen.lastSeen }, { user: 'old-admin', groups: ['system:masters'], generation: 1, server: 'apiserver', lastSeen: 'string', address: '127.0.0.1' });
    assert.ok(Date.parse(seen.lastSeen) > Date.parse(started.rotation!.startedAt), 'seen after the rotation started');
    assert.equal(named(lifetime.observedClients, 'old-kubectl')?.generation, 1, 'kubectl on the old kubeconfig is listed');
    assert.equal(named(lifetime.observedClients, 'new-kubectl'), undefined, 'a client on the new generation is not listed');
    assert.ok(named((await tpj<FleetCluster>(['clusters', 'describe', 'obs'])).observedClients, 'old-admin'), 'describe lists it too');
    const text = await tp(['clusters', 'check-credential-lifetime', 'obs', '--data-dir', dataDir]);
    assert.match(text.stdout, /2 client\(s\) seen presenting the old generation in the last 0m4s/);
    assert.match(text.stdout, /old-admin\s+system:masters\s+g1\s+apiserver\s+\S+\s+127\.0\.0\.1/);

    // Completion is refused, naming the user, with what to do.
    const refused = await complete();
    assert.equal(refused.status, 5, refused.stderr);
    assert.match(refused.stderr, /old-kubectl/);
    assert.match(refused.stderr, /presented generation 1 of the cluster root CA in the last 0m4s .*old-admin \(groups system:masters\) on the apiserver from 127\.0\.0\.1/);
    assert.match(refused.stderr, /--force/);
    assert.equal((await tpj<FleetCluster>(['clusters', 'describe', 'obs'])).rotation?.phase, 'moving', 'nothing was retired');

    // They stop polling; after the window, completion is allowed (asked again until it is).
    await old.stop();
    await oldKubectl.stop();
    assert.deepEqual(old.errors, [], 'the old admin was answered throughout the rotation');
    assert.deepEqual(oldKubectl.errors, [], 'kubectl on the old kubeconfig was answered throughout the rotation');
    assert.ok(oldKubectl.ok() > 0);
    const lastSeenOld = (await tpj<CredentialLifetime>(['clusters', 'check-credential-lifetime', 'obs'])).observedClients ?? [];
    const lastOld = Math.max(Date.parse(seen.lastSeen), ...lastSeenOld.map((c) => Date.parse(c.lastSeen)));
    const done = await waitFor('completion to be allowed once the old admin has not been seen for the window', async () => {
      const r = await complete();
      if (r.status === 0) return JSON.parse(r.stdout) as FleetCluster;
      if (!/old-admin|old-kubectl/.test(r.stderr)) throw new Error(`refused for another reason: ${r.stderr}`);
      return undefined;
    }, 60000, 500);
    assert.equal(done.rotation?.phase, 'done');
    assert.equal(done.rotation?.forcedClients, undefined, 'not forced');
    assert.ok(Date.parse(done.rotation!.completedAt!) >= lastOld + WINDOW_S * 1000, 'completed only once the last old sighting was older than the window');
    assert.deepEqual(done.observedClients, [], 'no rotation runs: nobody listed');

    // ---- a second rotation: --force completes although a client of the old generation (now g2) is still polling ----
    const poller2 = await poller('poller-2');
    await waitFor('the second poller to be answered', () => (poller2.ok() > 0 ? true : undefined), 30000, 100);
    const second = await tpj<FleetCluster>(['clusters', 'update', 'obs', '--start-credential-rotation']);
    assert.equal(second.rotation?.to, 3);
    await waitFor('the second poller to be listed on generation 2', async () => {
      const c = named((await tpj<CredentialLifetime>(['clusters', 'check-credential-lifetime', 'obs'])).observedClients, 'poller-2');
      return c?.generation === 2 ? c : undefined;
    }, 30000, 300);
    const refused2 = await complete();
    assert.equal(refused2.status, 5, refused2.stderr);
    assert.match(refused2.stderr, /poller-2/);
    const forced = await complete(true);
    assert.equal(forced.status, 0, forced.stderr);
    const f = JSON.parse(forced.stdout) as FleetCluster;
    assert.equal(f.rotation?.phase, 'done');
    assert.deepEqual(f.rotation?.forcedClients, ['poller-2 (apiserver)']);
    const described = await tp(['clusters', 'describe', 'obs', '--data-dir', dataDir]);
    assert.match(described.stdout, /forced past clients seen on the old generation: poller-2 \(apiserver\)/);
    await poller2.stop();
  });
});
