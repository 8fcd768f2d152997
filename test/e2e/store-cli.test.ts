// A cluster's state store on trustplane's own etcd CAs: etcdctl with `store credentials`, isolation between clusters and CAs,
// kill -9 durability of the store process, and a real 3-member etcd cluster on certificates from `store member-certs`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openStore } from '../../src/store/client.js';
import { clusterPaths } from '../../src/util/datadir.js';
import { waitFor } from '../../src/util/wait.js';
import { startCaChild, type CaChild } from '../ca/helpers.js';
import { startEtcdCluster } from '../helpers/etcd-cluster.js';
import { killChild, tp, tpSpawn } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

interface Creds { endpoint: string; files: Record<string, string>; etcdctlFlags: string }

function etcdctl(flags: string, args: string[]) {
  const r = spawnSync('etcdctl', [...flags.split(' '), '--command-timeout=5s', '--dial-timeout=3s', ...args], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' }, timeout: 20000 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe('trustplane store on the cluster etcd CAs', () => {
  const tmp = tempDir('tp-e2e-store-');
  let ca: CaChild;
  let store: ReturnType<typeof tpSpawn>;
  let a: Creds;

  const startStore = async () => {
    store = tpSpawn(['store', 'serve', '--cluster', 'alpha', '--data-dir', ca.dataDir]);
    const ep = clusterPaths(ca.dataDir, 'alpha').storeEndpoint;
    await waitFor('store endpoint', () => existsSync(ep) && (JSON.parse(readFileSync(ep, 'utf8')) as { pid: number }).pid === store.child.pid ? true : undefined, 30000);
  };
  const creds = (cluster: string): Creds => {
    const r = tp(['store', 'credentials', cluster, '--out', join(tmp.path, `creds-${cluster}`), '-o', 'json', '--data-dir', ca.dataDir]);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as Creds;
  };

  before(async () => {
    ca = await startCaChild(join(tmp.path, 'data'));
    // Only the authorities: this test runs the store itself with `store serve`, as a user without the host would.
    const fleet = ca.fleet();
    for (const c of ['alpha', 'beta']) await fleet.createCluster({ name: c });
    await startStore();
    a = creds('alpha');
  });
  after(async () => {
    if (store) await killChild(store.child);
    await ca.stop();
    tmp.remove();
  });

  test('etcdctl works with the files `store credentials` writes, as they are', () => {
    assert.match(a.etcdctlFlags, /--endpoints=https:\/\/127\.0\.0\.1:\d+/);
    assert.equal(etcdctl(a.etcdctlFlags, ['put', '/k', 'v1']).status, 0);
    const got = etcdctl(a.etcdctlFlags, ['get', '/k', '--print-value-only']);
    assert.equal(got.stdout.trim(), 'v1', got.stderr);
    const status = etcdctl(a.etcdctlFlags, ['endpoint', 'status', '-w', 'json']);
    assert.equal(status.status, 0, status.stderr);
    assert.ok(JSON.parse(status.stdout)[0].Status.header.revision >= 2);
    assert.equal(etcdctl(a.etcdctlFlags, ['endpoint', 'health']).status, 0);
    assert.match(etcdctl(a.etcdctlFlags, ['member', 'list']).stdout, /alpha-store/);
  });

  test("another cluster's etcd client certificate and this cluster's etcd peer certificate are refused", () => {
    const b = creds('beta');
    const flagsB = b.etcdctlFlags.replace(/--endpoints=\S+/, `--endpoints=${a.endpoint}`).replace(/--cacert=\S+/, `--cacert=${a.files['ca.crt']}`);
    const r = etcdctl(flagsB, ['get', '/k']);
    assert.notEqual(r.status, 0, 'beta credentials must not read alpha state');
    assert.doesNotMatch(r.stdout, /v1/);
    const m = tp(['store', 'member-certs', 'alpha', '--member', 'm9', '--out', join(tmp.path, 'peer-as-client'), '-o', 'json', '--data-dir', ca.dataDir]);
    assert.equal(m.status, 0, m.stderr);
    const files = (JSON.parse(m.stdout) as { files: Record<string, string> }).files;
    const peerFlags = `--endpoints=${a.endpoint} --cacert=${a.files['ca.crt']} --cert=${files['peer-m9.crt']} --key=${files['peer-m9.key']}`;
    const p = etcdctl(peerFlags, ['get', '/k']);
    assert.notEqual(p.status, 0, 'a peer-CA certificate is not a client credential');
  });

  test('kill -9 of the store process loses no acknowledged write', async () => {
    for (let i = 0; i < 20; i++) assert.equal(etcdctl(a.etcdctlFlags, ['put', `/durable/${i}`, `v${i}`]).status, 0);
    await killChild(store.child, 'SIGKILL');
    await startStore();
    const fresh = creds('alpha'); // new port after restart
    const r = etcdctl(fresh.etcdctlFlags, ['get', '/durable/', '--prefix', '--keys-only', '-w', 'json']);
    assert.equal(JSON.parse(r.stdout).count, 20, r.stderr);
    a = fresh;
  });

  test('a real 3-member etcd cluster on certificates from `store member-certs`, reached with `store credentials`', async () => {
    const members = ['m1', 'm2', 'm3'].map((m) => {
      const r = tp(['store', 'member-certs', 'alpha', '--member', m, '--out', join(tmp.path, 'etcd'), '-o', 'json', '--data-dir', ca.dataDir]);
      assert.equal(r.status, 0, r.stderr);
      return (JSON.parse(r.stdout) as { files: Record<string, string> }).files;
    });
    const read = (p: string) => readFileSync(p, 'utf8');
    const material = {
      apiCa: read(members[0]['etcd-api-ca.crt']),
      peerCa: read(members[0]['etcd-peer-ca.crt']),
      members: members.map((f, i) => ({
        server: { cert: read(f[`server-m${i + 1}.crt`]), key: read(f[`server-m${i + 1}.key`]) },
        peer: { cert: read(f[`peer-m${i + 1}.crt`]), key: read(f[`peer-m${i + 1}.key`]) },
      })),
      client: { cert: read(a.files['client.crt']), key: read(a.files['client.key']), ca: read(a.files['ca.crt']) },
    };
    const etcd = await startEtcdCluster({ members: 3, tls: material });
    try {
      const client = await openStore({ endpoints: etcd.endpoints, tls: etcd.tls });
      try {
        await client.put('/real', 'etcd');
        assert.equal((await client.get('/real'))?.value.toString(), 'etcd');
      } finally {
        await client.close();
      }
      const b = creds('beta');
      const flagsB = `--endpoints=${etcd.endpoints[0]} --cacert=${a.files['ca.crt']} --cert=${b.files['client.crt']} --key=${b.files['client.key']}`;
      assert.notEqual(etcdctl(flagsB, ['get', '/real']).status, 0, "beta's client certificate is refused by alpha's etcd");
      const flagsA = `--endpoints=${etcd.endpoints.join(',')} --cacert=${a.files['ca.crt']} --cert=${a.files['client.crt']} --key=${a.files['client.key']}`;
      assert.equal(etcdctl(flagsA, ['get', '/real', '--print-value-only']).stdout.trim(), 'etcd');
    } finally {
      await etcd.stop();
    }
  });
});
