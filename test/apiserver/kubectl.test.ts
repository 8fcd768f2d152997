// The real kubectl against a real API server over mTLS on an embedded store: every command issue 4 names.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createBootstrapToken } from '../../src/apiserver/index.js';
import { waitFor } from '../../src/util/wait.js';
import { opensslCsr } from '../helpers/openssl.js';
import { call, csrManifest, KUBECTL, startTestCluster, writeIn, type TestCluster } from './harness.js';

describe('kubectl against the API server', () => {
  let c: TestCluster;
  let admin: string;
  let csrPem: string;

  before(async () => {
    c = await startTestCluster();
    admin = c.kubeconfig(c.admin, 'admin');
    csrPem = opensslCsr(c.dir, 'n1', { subj: '/CN=system:node:n1/O=system:nodes' });
  });
  after(() => c?.stop());

  const k = (args: string[], o?: { input?: string; kubeconfig?: string }) => c.kubectl(o?.kubeconfig ?? admin, args, o);
  const ok = async (args: string[], o?: { kubeconfig?: string }) => {
    const r = await k(args, o);
    assert.equal(r.status, 0, `kubectl ${args.join(' ')} failed: ${r.stderr}`);
    return r.stdout;
  };

  it('get csr on an empty cluster says so', async () => {
    const r = await k(['get', 'csr']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /No resources found/);
  });

  it('create -f, get csr (Table columns), get -o yaml, describe', async () => {
    const f = writeIn(c, 'csr-a.json', csrManifest('csr-a', csrPem, { expirationSeconds: 86400 }));
    assert.match(await ok(['create', '-f', f]), /certificatesigningrequest.certificates.k8s.io\/csr-a created/);
    const table = await ok(['get', 'csr']);
    const [header, row] = table.trim().split('\n');
    assert.deepEqual(header.split(/\s+/), ['NAME', 'AGE', 'SIGNERNAME', 'REQUESTOR', 'REQUESTEDDURATION', 'CONDITION']);
    assert.deepEqual(row.split(/\s+/).filter((_, i) => i !== 1), ['csr-a', 'kubernetes.io/kube-apiserver-client-kubelet', 'admin', '24h', 'Pending']);

    const yaml = await ok(['get', 'csr', 'csr-a', '-o', 'yaml']);
    assert.match(yaml, /kind: CertificateSigningRequest/);
    assert.match(yaml, /username: admin/);
    assert.match(yaml, /- system:masters/);
    assert.match(yaml, /resourceVersion: "\d+"/);
    const kv = await c.store.get('/registry/certificatesigningrequests/csr-a');
    assert.ok(kv, 'the CSR lives in the store under /registry/certificatesigningrequests/');
    assert.match(yaml, new RegExp(`resourceVersion: "${kv.modRevision}"`));

    const d = await ok(['describe', 'csr', 'csr-a']);
    assert.match(d, /Requesting User:\s+admin/);
    assert.match(d, /Signer:\s+kubernetes.io\/kube-apiserver-client-kubelet/);
    assert.match(d, /Common Name:\s+system:node:n1/);
    assert.match(d, /Organization:\s+system:nodes/);
    assert.match(d, /Status:\s+Pending/);
  });

  it('apply -f client-side creates, then patches with a strategic merge patch', async () => {
    const m = csrManifest('csr-apply', csrPem);
    const f = writeIn(c, 'csr-apply.json', m);
    assert.match(await ok(['apply', '-f', f]), /csr-apply created/);
    const f2 = writeIn(c, 'csr-apply2.json', { ...m, metadata: { ...m.metadata, labels: { team: 'blue' } } });
    assert.match(await ok(['apply', '-f', f2]), /csr-apply configured/);
    assert.match(await ok(['get', 'csr', 'csr-apply', '--show-labels']), /team=blue/);
    assert.match(await ok(['apply', '-f', f2]), /csr-apply unchanged/);
  });

  it('apply --server-side creates when missing and applies again', async () => {
    const m = csrManifest('csr-ssa', csrPem);
    const f = writeIn(c, 'csr-ssa.json', m);
    assert.match(await ok(['apply', '--server-side', '-f', f]), /csr-ssa serverside-applied/);
    const f2 = writeIn(c, 'csr-ssa2.json', { ...m, metadata: { ...m.metadata, annotations: { owner: 'ops' } } });
    assert.match(await ok(['apply', '--server-side', '-f', f2]), /csr-ssa serverside-applied/);
    assert.match(await ok(['get', 'csr', 'csr-ssa', '-o', 'jsonpath={.metadata.annotations.owner}']), /^ops$/);
  });

  it('get csr -w sees an approval arrive; certificate approve (protobuf body) and deny', async () => {
    const cache = mkdtempSync(join(c.dir, 'wcache-'));
    const w = spawn(KUBECTL, ['--kubeconfig', admin, '--cache-dir', cache, 'get', 'csr', 'csr-a', '-w'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    w.stdout.on('data', (d) => (out += d));
    try {
      await waitFor('the watch to list csr-a', () => /csr-a .*Pending/.test(out) || undefined, 20_000);
      assert.match(await ok(['certificate', 'approve', 'csr-a']), /csr-a approved/);
      await waitFor('the watch to show the approval', () => /csr-a .*Approved/.test(out) || undefined, 20_000);
    } finally {
      w.kill('SIGKILL');
    }
    const status = JSON.parse(await ok(['get', 'csr', 'csr-a', '-o', 'jsonpath={.status}']));
    assert.equal(status.conditions.length, 1);
    assert.equal(status.conditions[0].type, 'Approved');
    assert.equal(status.conditions[0].reason, 'KubectlApprove');
    assert.ok(Date.parse(status.conditions[0].lastTransitionTime) > Date.parse('2000-01-01'), 'an unset time from protobuf is stamped now');

    assert.match(await ok(['certificate', 'deny', 'csr-apply']), /csr-apply denied/);
    assert.match(await ok(['get', 'csr', 'csr-apply']), /csr-apply .*Denied/);
    const again = await k(['certificate', 'approve', 'csr-apply']);
    assert.notEqual(again.status, 0, 'a denied CSR cannot be approved');
  });

  it('delete csr, then get says NotFound', async () => {
    assert.match(await ok(['delete', 'csr', 'csr-ssa']), /"csr-ssa" deleted/);
    const r = await k(['get', 'csr', 'csr-ssa']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /Error from server \(NotFound\): certificatesigningrequests.certificates.k8s.io "csr-ssa" not found/);
    assert.equal(await c.store.get('/registry/certificatesigningrequests/csr-ssa'), null);
  });

  it('get nodes -o wide and describe node', async () => {
    const node = {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: 'n1', labels: { 'node-role.kubernetes.io/worker': '' } },
      status: {
        addresses: [{ type: 'InternalIP', address: '10.0.0.5' }, { type: 'Hostname', address: 'n1' }],
        conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status' }],
        nodeInfo: { kubeletVersion: 'v1.32.0', osImage: 'Debian GNU/Linux 12', kernelVersion: '6.1.0-21', containerRuntimeVersion: 'containerd://1.7.0', operatingSystem: 'linux', architecture: 'amd64' },
        capacity: { cpu: '4', memory: '8Gi', pods: '110' },
      },
    };
    assert.match(await ok(['create', '-f', writeIn(c, 'node.json', node)]), /node\/n1 created/);
    const lines = (await ok(['get', 'nodes', '-o', 'wide'])).trim().split('\n');
    assert.deepEqual(lines[0].split(/\s{2,}/), ['NAME', 'STATUS', 'ROLES', 'AGE', 'VERSION', 'INTERNAL-IP', 'EXTERNAL-IP', 'OS-IMAGE', 'KERNEL-VERSION', 'CONTAINER-RUNTIME']);
    const cells = lines[1].split(/\s{2,}/);
    assert.deepEqual([cells[0], cells[1], cells[2], cells[4], cells[5], cells[6], cells[7], cells[8], cells[9]], [
      'n1', 'Ready', 'worker', 'v1.32.0', '10.0.0.5', '<none>', 'Debian GNU/Linux 12', '6.1.0-21', 'containerd://1.7.0',
    ]);
    assert.deepEqual((await ok(['get', 'no'])).trim().split('\n')[0].split(/\s+/), ['NAME', 'STATUS', 'ROLES', 'AGE', 'VERSION']);
    const d = await ok(['describe', 'node', 'n1']);
    assert.match(d, /Name:\s+n1/);
    assert.match(d, /Roles:\s+worker/);
    assert.match(d, /InternalIP:\s+10.0.0.5/);
    assert.match(d, /Ready\s+True/);
    assert.match(d, /Non-terminated Pods:\s+\(0 in total\)/);
  });

  it('api-resources lists the resources with their short names', async () => {
    const out = await ok(['api-resources']);
    assert.match(out, /^certificatesigningrequests\s+csr\s+certificates.k8s.io\/v1\s+false\s+CertificateSigningRequest$/m);
    assert.match(out, /^nodes\s+no\s+v1\s+false\s+Node$/m);
    assert.match(out, /^leases\s+coordination.k8s.io\/v1\s+true\s+Lease$/m);
  });

  it('legacy discovery and OpenAPI v3 answer too', async () => {
    const api = await call(c, c.admin, 'GET', '/api');
    assert.equal(api.json.kind, 'APIVersions');
    assert.deepEqual(api.json.versions, ['v1']);
    const apis = await call(c, c.admin, 'GET', '/apis');
    assert.deepEqual(apis.json.groups.map((g: { name: string }) => g.name).sort(), ['authentication.k8s.io', 'certificates.k8s.io', 'coordination.k8s.io']);
    const v1 = await call(c, c.admin, 'GET', '/apis/certificates.k8s.io/v1');
    const csr = v1.json.resources.find((r: { name: string }) => r.name === 'certificatesigningrequests');
    assert.deepEqual(csr.shortNames, ['csr']);
    assert.ok(v1.json.resources.some((r: { name: string }) => r.name === 'certificatesigningrequests/approval'));
    const root = await call(c, c.admin, 'GET', '/openapi/v3');
    const doc = await call(c, c.admin, 'GET', root.json.paths['apis/certificates.k8s.io/v1'].serverRelativeURL);
    const patchOp = doc.json.paths['/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}'].patch;
    assert.deepEqual(patchOp['x-kubernetes-group-version-kind'], { group: 'certificates.k8s.io', version: 'v1', kind: 'CertificateSigningRequest' });
    assert.ok(patchOp.parameters.some((p: { name: string }) => p.name === 'fieldValidation'));
    const explain = await ok(['explain', 'csr.spec.expirationSeconds']);
    assert.match(explain, /at least 600 seconds/);
  });

  it('auth whoami for an admin, a node and a bootstrap token', async () => {
    assert.match(await ok(['auth', 'whoami']), /Username\s+admin\s*\nGroups\s+\[system:masters system:authenticated\]/);
    const nodeKc = c.kubeconfig(c.node('n1'));
    assert.match(await ok(['auth', 'whoami'], { kubeconfig: nodeKc }), /Username\s+system:node:n1\s*\nGroups\s+\[system:nodes system:authenticated\]/);
    const t = await createBootstrapToken(c.store, { pool: 'default', ttlSeconds: 600 });
    const out = await ok(['auth', 'whoami'], { kubeconfig: c.kubeconfig({ token: t.token }) });
    assert.match(out, new RegExp(`Username\\s+system:bootstrap:${t.id}`));
    assert.match(out, /system:bootstrappers system:bootstrappers:default/);
  });

  it('a lease in kube-node-lease shows up in describe node', async () => {
    const lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: 'n1', namespace: 'kube-node-lease' },
      spec: { holderIdentity: 'n1', leaseDurationSeconds: 40, renewTime: '2025-01-01T00:00:00.000000Z' },
    };
    const nodeKc = c.kubeconfig(c.node('n1'));
    assert.match(await ok(['create', '-f', writeIn(c, 'lease.json', lease)], { kubeconfig: nodeKc }), /lease.coordination.k8s.io\/n1 created/);
    assert.match(await ok(['get', 'leases', '-n', 'kube-node-lease']), /n1\s+n1\s+\d+s/);
    assert.match(await ok(['describe', 'node', 'n1']), /HolderIdentity:\s+n1/);
  });
});
