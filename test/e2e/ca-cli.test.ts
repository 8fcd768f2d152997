// The control plane as a user runs it: `trustplane ca serve` + `serve`, `clusters ...`, `ca sign`, kill -9 and restart, `up` and Ctrl-C.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { caPaths, clusterPaths, hostPaths } from '../../src/util/datadir.js';
import { waitFor } from '../../src/util/wait.js';
import { isAlive, killChild, tp, tpSpawn } from '../helpers/cli.js';
import { opensslCsr, opensslVerify, openssl } from '../helpers/openssl.js';
import { tempDir } from '../helpers/tmp.js';
import { startCaChild } from '../ca/helpers.js';
import { startControlPlane, type ControlPlane } from '../helpers/control-plane.js';

function endpointPid(dataDir: string, which: 'ca' | 'host' = 'ca'): number | undefined {
  const p = which === 'ca' ? caPaths(dataDir).endpoint : hostPaths(dataDir).endpoint;
  return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as { pid: number }).pid : undefined;
}

describe('trustplane ca serve + serve + clusters (real processes)', () => {
  const tmp = tempDir('tp-e2e-ca-');
  const dataDir = join(tmp.path, 'data');
  let cp: ControlPlane;

  before(async () => {
    cp = await startControlPlane(dataDir);
  });
  after(async () => {
    await cp.stop();
    tmp.remove();
  });

  test('clusters create / list / describe -o json, and the errors a user sees', () => {
    const created = tp(['clusters', 'create', 'prod', '--data-dir', dataDir, '-o', 'json']);
    assert.equal(created.status, 0, created.stderr);
    const view = JSON.parse(created.stdout);
    assert.equal(view.name, 'prod');
    const list = tp(['clusters', 'list', '-o', 'json', '--data-dir', dataDir]);
    assert.equal(list.status, 0, list.stderr);
    assert.deepEqual(JSON.parse(list.stdout).map((c: { name: string }) => c.name), ['prod']);
    assert.equal(view.status, 'RUNNING');
    assert.match(view.endpoint, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.match(view.caCertHash, /^sha256:[0-9a-f]{64}$/);
    assert.deepEqual(view.nodePools.map((p: { name: string }) => p.name), ['default-pool']);
    const table = tp(['--data-dir', dataDir, 'clusters', 'describe', 'prod']);
    assert.equal(table.status, 0);
    assert.match(table.stdout, /status: RUNNING/);
    assert.match(table.stdout, /cluster root CA\s+g1\s+active/);
    assert.match(table.stdout, /etcd API CA\s+g1\s+active/);
    assert.match(table.stdout, /etcd peer CA\s+g1\s+active/);

    const missing = tp(['clusters', 'describe', 'nope', '--data-dir', dataDir]);
    assert.equal(missing.status, 4);
    assert.match(missing.stderr, /error: cluster "nope" not found/);
    const dup = tp(['clusters', 'create', 'prod', '--data-dir', dataDir]);
    assert.equal(dup.status, 5);
    assert.match(dup.stderr, /already exists/);
    const badLife = tp(['clusters', 'create', 'x', '--root-ca-lifetime', 'forever', '--data-dir', dataDir]);
    assert.equal(badLife.status, 2);
    assert.match(badLife.stderr, /--root-ca-lifetime "forever" is not a duration/);
    assert.match(badLife.stderr, /hint: /);
    const badName = tp(['clusters', 'create', 'Bad_Name', '--data-dir', dataDir]);
    assert.equal(badName.status, 2);
    assert.match(badName.stderr, /cluster name "Bad_Name" is not valid/);
    const noHost = tp(['clusters', 'list', '--data-dir', join(tmp.path, 'empty')]);
    assert.equal(noHost.status, 6);
    assert.match(noHost.stderr, /no control plane host is running for data dir/);
    assert.match(noHost.stderr, /hint: start one with `trustplane up`/);
  });

  test('ca sign: an openssl CSR signed through the CLI passes openssl verify against the bundle describe prints', () => {
    const csr = opensslCsr(tmp.path, 'cli', { subj: '/O=system:nodes/CN=system:node:edge-7' });
    const csrFile = join(tmp.path, 'cli.csr');
    const out = join(tmp.path, 'cli.crt');
    const signed = tp(['ca', 'sign', '--cluster', 'prod', '--signer', 'kubernetes.io/kube-apiserver-client-kubelet', '--csr', csrFile, '--out', out, '--data-dir', dataDir]);
    assert.equal(signed.status, 0, signed.stderr);
    assert.ok(csr.length > 0);
    const bundle = tp(['clusters', 'describe', 'prod', '--bundle', 'root', '--data-dir', dataDir]).stdout;
    const v = opensslVerify(tmp.path, { roots: bundle, leaf: readFileSync(out, 'utf8'), purpose: 'sslclient' });
    assert.ok(v.ok, v.output);
    const refused = tp(['ca', 'sign', '--cluster', 'prod', '--signer', 'kubernetes.io/kubelet-serving', '--csr', csrFile, '--data-dir', dataDir]);
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, /at least one DNS or IP subject alternative name/);
  });

  test('the API refuses TLS 1.1 and clients without a certificate', () => {
    const url = new URL((JSON.parse(readFileSync(caPaths(dataDir).endpoint, 'utf8')) as { url: string }).url);
    const old = openssl(['s_client', '-connect', `127.0.0.1:${url.port}`, '-tls1_1'], { input: '' });
    assert.notEqual(old.status, 0);
    assert.match(old.stdout + old.stderr, /alert protocol version|alert number 70/);
    assert.match(old.stdout, /Cipher is \(NONE\)/);
    const modern = openssl(['s_client', '-connect', `127.0.0.1:${url.port}`, '-CAfile', caPaths(dataDir).serviceCa], { input: '' });
    assert.match(modern.stdout + modern.stderr, /TLSv1\.3/);
  });

  test('kill -9 of the CA service and of the host: the same authorities come back, the API server keeps its port', async () => {
    const before = JSON.parse(tp(['clusters', 'describe', 'prod', '-o', 'json', '--data-dir', dataDir]).stdout);
    const pid = cp.ca.child.pid!;
    await cp.ca.stop('SIGKILL');
    assert.equal(isAlive(pid), false);
    cp.ca = await startCaChild(dataDir);
    // The CA comes back on its recorded port, so the running host reaches it without a restart.
    const afterCa = tp(['clusters', 'describe', 'prod', '-o', 'json', '--data-dir', dataDir]);
    assert.equal(afterCa.status, 0, afterCa.stderr);
    const afterView = JSON.parse(afterCa.stdout);
    assert.deepEqual(afterView.authorities.map((a: { generations: Array<{ sha256: string }> }) => a.generations[0].sha256), before.authorities.map((a: { generations: Array<{ sha256: string }> }) => a.generations[0].sha256));
    const signed = tp(['ca', 'sign', '--cluster', 'prod', '--signer', 'kubernetes.io/kube-apiserver-client-kubelet', '--csr', join(tmp.path, 'cli.csr'), '--data-dir', dataDir]);
    assert.equal(signed.status, 0, signed.stderr);
    const status = JSON.parse(tp(['ca', 'status', '-o', 'json', '--data-dir', dataDir]).stdout);
    assert.equal(status.keystore, 'soft');
    assert.equal(status.clusters, 1);

    const hostPid = cp.host.child.pid!;
    await cp.restartHost('SIGKILL');
    assert.equal(isAlive(hostPid), false);
    const resumed = await waitFor('the cluster to run again', () => {
      const r = tp(['clusters', 'describe', 'prod', '-o', 'json', '--data-dir', dataDir]);
      const v = r.status === 0 ? JSON.parse(r.stdout) : undefined;
      return v?.status === 'RUNNING' ? v : undefined;
    }, 60000);
    assert.equal(resumed.endpoint, before.endpoint, 'same API server URL: kubeconfigs stay valid');
    assert.deepEqual(resumed.store.endpoints, before.store.endpoints);
  });

  test('clusters delete destroys the cluster (and refuses without --yes when not interactive)', () => {
    tp(['clusters', 'create', 'tmp1', '--data-dir', dataDir]);
    const noYes = tp(['clusters', 'delete', 'tmp1', '--data-dir', dataDir]);
    assert.equal(noYes.status, 2);
    assert.match(noYes.stderr, /pass --yes/);
    const keysBefore = (JSON.parse(readFileSync(caPaths(dataDir).state, 'utf8')) as { clusters: Record<string, unknown> }).clusters;
    assert.ok(keysBefore.tmp1);
    const del = tp(['clusters', 'delete', 'tmp1', '--yes', '--data-dir', dataDir]);
    assert.equal(del.status, 0, del.stderr);
    assert.equal(tp(['clusters', 'describe', 'tmp1', '--data-dir', dataDir]).status, 4);
    assert.equal(existsSync(clusterPaths(dataDir, 'tmp1').dir), false, 'its store and files are gone');
    const keysAfter = (JSON.parse(readFileSync(caPaths(dataDir).state, 'utf8')) as { clusters: Record<string, unknown> }).clusters;
    assert.equal(keysAfter.tmp1, undefined, 'the CA service forgot it (its keys are destroyed)');
  });
});

describe('trustplane up', () => {
  const tmp = tempDir('tp-e2e-up-');
  after(() => tmp.remove());

  test('starts the CA service and the host, creates the demo cluster, writes its kubeconfig, stops its children on SIGINT; a second up resumes', async () => {
    const dataDir = join(tmp.path, 'data');
    for (const round of [1, 2]) {
      const up = tpSpawn(['up', '--data-dir', dataDir, '--nodes', '0']);
      try {
        await waitFor('up to be ready', () => /Press Ctrl-C to stop/.test(up.output()) || undefined, 60000);
        assert.match(up.output(), /cluster root CA\s+g1\s+active/);
        assert.match(up.output(), round === 1 ? /creating cluster demo/ : /resuming 1 existing cluster/);
        const kubeconfig = clusterPaths(dataDir, 'demo').adminKubeconfig;
        assert.match(up.output(), new RegExp(`admin kubeconfig is ${kubeconfig.replace(/[.]/g, '\\.')}`));
        const whoami = spawnSync('/usr/bin/kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', join(tmp.path, `kc-${round}`), 'auth', 'whoami', '-o', 'json'], { encoding: 'utf8', timeout: 30000 });
        assert.equal(whoami.status, 0, whoami.stderr);
        assert.deepEqual(JSON.parse(whoami.stdout).status.userInfo.groups.includes('system:masters'), true);
        const caPid = endpointPid(dataDir)!;
        const hostPid = endpointPid(dataDir, 'host')!;
        assert.ok(isAlive(caPid));
        assert.ok(isAlive(hostPid));
        up.child.kill('SIGINT');
        await waitFor('up to exit', () => up.child.exitCode !== null || undefined, 30000);
        assert.equal(isAlive(caPid), false, 'the CA child is stopped');
        assert.equal(isAlive(hostPid), false, 'the host child is stopped');
      } finally {
        // SIGTERM first, so that up stops its own children; then make sure nothing we started is left.
        const pids = [endpointPid(dataDir), endpointPid(dataDir, 'host')];
        await killChild(up.child, 'SIGTERM').catch(() => killChild(up.child));
        for (const pid of pids) if (pid && pid !== process.pid && isAlive(pid)) process.kill(pid, 'SIGKILL');
      }
    }
  });
});
