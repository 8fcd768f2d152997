// A cluster whose state lives on a real 3-member etcd cluster, as the README documents it: `clusters create --store etcd`,
// member certificates from the cluster's own etcd CAs, the host connecting once etcd is up, kubectl working, a member lost.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../../src/util/wait.js';
import { tp } from '../helpers/cli.js';
import { startControlPlane, type ControlPlane } from '../helpers/control-plane.js';
import { freePorts, startEtcdCluster, type EtcdCluster } from '../helpers/etcd-cluster.js';
import { opensslCsr } from '../helpers/openssl.js';
import { tempDir } from '../helpers/tmp.js';

describe('a cluster on a real etcd cluster (etcd 3.4, 3 members, certificates from the cluster etcd CAs)', () => {
  const tmp = tempDir('tp-e2e-fleet-etcd-');
  const dataDir = join(tmp.path, 'data');
  let cp: ControlPlane;
  let etcd: EtcdCluster | undefined;

  const tpj = (args: string[]) => {
    const r = tp([...args, '--data-dir', dataDir, '-o', 'json']);
    assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  const kubectl = (kubeconfig: string, args: string[], input?: string) => {
    const r = spawnSync('/usr/bin/kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', mkdtempSync(join(tmp.path, 'cache-')), ...args], { input: input ?? '', encoding: 'utf8', timeout: 30000 });
    return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  };
  const csrManifest = (name: string) =>
    JSON.stringify({
      apiVersion: 'certificates.k8s.io/v1',
      kind: 'CertificateSigningRequest',
      metadata: { name },
      spec: { request: Buffer.from(opensslCsr(tmp.path, name, { subj: `/CN=${name}` })).toString('base64'), signerName: 'kubernetes.io/kube-apiserver-client', usages: ['client auth'] },
    });

  before(async () => {
    cp = await startControlPlane(dataDir);
  });
  after(async () => {
    await etcd?.stop();
    await cp?.stop();
    tmp.remove();
  });

  test('create --store etcd waits for etcd, then serves kubectl from it; losing one member loses no write', async () => {
    const clientPorts = await freePorts(3);
    const endpoints = clientPorts.map((p) => `https://127.0.0.1:${p}`);
    const created = tpj(['clusters', 'create', 'gamma', '--store', 'etcd', '--etcd-endpoints', endpoints.join(',')]);
    assert.equal(created.status, 'PROVISIONING', 'nothing answers at those endpoints yet');
    assert.deepEqual(created.store, { type: 'etcd', endpoints });

    const files = ['m1', 'm2', 'm3'].map((m) => tpj(['store', 'member-certs', 'gamma', '--member', m, '--out', join(tmp.path, 'etcd')]).files as Record<string, string>);
    const creds = tpj(['store', 'credentials', 'gamma', '--out', join(tmp.path, 'creds')]);
    assert.equal(creds.endpoint, endpoints.join(','), 'store credentials names the etcd endpoints');
    const read = (p: string) => readFileSync(p, 'utf8');
    etcd = await startEtcdCluster({
      members: 3,
      clientPorts,
      tls: {
        apiCa: read(files[0]['etcd-api-ca.crt']),
        peerCa: read(files[0]['etcd-peer-ca.crt']),
        members: files.map((f, i) => ({ server: { cert: read(f[`server-m${i + 1}.crt`]), key: read(f[`server-m${i + 1}.key`]) }, peer: { cert: read(f[`peer-m${i + 1}.crt`]), key: read(f[`peer-m${i + 1}.key`]) } })),
        client: { cert: read(creds.files['client.crt']), key: read(creds.files['client.key']), ca: read(creds.files['ca.crt']) },
      },
    });

    const running = await waitFor('gamma to run on etcd', () => {
      const c = tpj(['clusters', 'describe', 'gamma']);
      return c.status === 'RUNNING' ? c : undefined;
    }, 60000, 500);
    assert.deepEqual(running.nodePools.map((p: { name: string }) => p.name), ['default-pool'], 'the default pool is made once the store answers');
    const kc = join(tmp.path, 'gamma.kubeconfig');
    tpj(['clusters', 'get-credentials', 'gamma', '--kubeconfig', kc]);
    const made = kubectl(kc, ['create', '-f', '-'], csrManifest('on-etcd'));
    assert.equal(made.status, 0, made.stderr);

    // The object is in etcd itself, read back with etcdctl and the files `store credentials` wrote.
    const flags = ['--endpoints', endpoints.join(','), '--cacert', creds.files['ca.crt'], '--cert', creds.files['client.crt'], '--key', creds.files['client.key']];
    const got = spawnSync('etcdctl', [...flags, 'get', '/registry/certificatesigningrequests/on-etcd', '--keys-only'], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' } });
    assert.equal(got.stdout.trim(), '/registry/certificatesigningrequests/on-etcd', got.stderr);

    // One member dies during writes: every acknowledged write is still there, and writes go on.
    const acked: string[] = [];
    for (let i = 0; i < 6; i++) {
      if (i === 3) await etcd.killMember(0);
      const r = kubectl(kc, ['create', '-f', '-'], csrManifest(`w-${i}`));
      if (r.status === 0) acked.push(`w-${i}`);
    }
    assert.ok(acked.includes('w-5'), 'writes go on with two members of three');
    const list = kubectl(kc, ['get', 'csr', '-o', 'jsonpath={.items[*].metadata.name}']);
    assert.equal(list.status, 0, list.stderr);
    for (const n of acked) assert.ok(list.stdout.split(' ').includes(n), `${n} was acknowledged and must be there`);
    await etcd.restartMember(0);
  });
});
