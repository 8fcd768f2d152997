// The etcd CAs are managed: with 90 days or less left, the lifetime controller rotates the etcd API CA (the embedded
// store and the control plane's store client reload their certificates) and the etcd peer CA, with writes going on
// throughout and none lost; etcdctl on new credentials works, on credentials of the retired generation it is refused.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { FleetCluster } from '../../src/fleet/api.js';
import { waitFor } from '../../src/util/wait.js';
import { tp } from '../helpers/cli.js';
import { ClusterWithNodes, generationStates, leaseWriter } from '../helpers/cluster-nodes.js';


describe('rotation of the etcd CAs (real processes, embedded store)', () => {
  const env = new ClusterWithNodes('tp-e2e-etcd-ca-');
  const { tmp, dataDir } = env;
  after(() => env.cleanup());

  test('both etcd CAs rotate by themselves; no acknowledged write is lost; old store credentials are refused', async () => {
    // The controller's first look comes before the cluster exists; the next, 3 s later, finds the etcd CAs due.
    const cp = await env.start({ hostArgs: ['--lifetime-check-interval', '3s'] });
    const f = cp.fleet();
    await f.create({ name: 'et', lifetimes: { 'etcd-api': 60 * 86400, 'etcd-peer': 60 * 86400 } });
    const storeCreds = (dir: string) => {
      const r = tp(['store', 'credentials', 'et', '--out', join(tmp.path, dir), '-o', 'json', '--data-dir', dataDir]);
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout) as { endpoint: string; files: Record<string, string> };
    };
    const etcdctl = (c: { endpoint: string; files: Record<string, string> }, args: string[]) =>
      spawnSync('etcdctl', ['--endpoints', c.endpoint, '--cacert', c.files['ca.crt'], '--cert', c.files['client.crt'], '--key', c.files['client.key'], '--dial-timeout', '3s', ...args], {
        encoding: 'utf8',
        env: { ...process.env, ETCDCTL_API: '3' },
        timeout: 20000,
      });
    const before = storeCreds('creds-g1');
    assert.equal(etcdctl(before, ['get', '/registry/trustplane/nodepools/', '--prefix', '--keys-only']).status, 0);

    // A steady stream of writes through the API server (each one a store write), counted when acknowledged.
    const { client: admin } = await env.admin('et');
    const writer = leaseWriter(admin);
    const { acked, failed } = writer;

    const describeIt = () => JSON.parse(tp(['clusters', 'describe', 'et', '--data-dir', dataDir, '-o', 'json']).stdout) as FleetCluster;
    const done = await waitFor('both etcd CAs rotated', () => {
      const c = describeIt();
      return generationStates(c, 'etcd-api') === 'retired (no key),active' && generationStates(c, 'etcd-peer') === 'retired (no key),active' && c.status === 'RUNNING' ? c : undefined;
    }, 60000, 500);
    await new Promise((r) => setTimeout(r, 1000)); // writes go on after the rotations
    await writer.stop();

    assert.deepEqual(failed, [], 'no write failed');
    assert.ok(acked.length > 50, `writes ran throughout (${acked.length})`);
    assert.deepEqual(await writer.lost(), [], 'every acknowledged write is there');
    assert.equal(generationStates(done, 'root'), 'active', 'the cluster root CA was left alone');
    assert.equal(done.rotation?.trigger, 'automatic');

    // New credentials (from the new generation) work; those of the retired generation are refused.
    const now = storeCreds('creds-g2');
    const got = etcdctl(now, ['get', `${'/registry/leases/kube-node-lease/'}${acked[0]}`, '--keys-only']);
    assert.equal(got.status, 0, got.stderr);
    const old = etcdctl(before, ['get', '/registry/trustplane/nodepools/', '--prefix', '--keys-only']);
    assert.notEqual(old.status, 0, 'the retired generation is refused');

    // No command rotates them by hand: they are managed.
    const manual = tp(['clusters', 'update', 'et', '--start-credential-rotation', '--authority', 'etcd-peer', '--data-dir', dataDir]);
    assert.equal(manual.status, 3, manual.stderr);
    assert.match(manual.stderr, /managed: trustplane rotates it automatically/);
  });
});
