// ClusterTrustBundles through a rotation of the cluster root CA, with real processes: the host publishes one bundle per
// root signer; `kubectl get clustertrustbundles` (1.33 and the dispatcher) shows them; start → two certificates, complete →
// one, the new; the node agent follows the rotation from the bundle (not cluster-info); a node may read them, not write them.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { buildKubeconfig } from '../../src/fleet/kubeconfig.js';
import { parseCertificates } from '../../src/pki/index.js';
import { waitFor } from '../../src/util/wait.js';
import { runKubectl } from '../apiserver/harness.js';
import { tp } from '../helpers/cli.js';
import { ClusterWithNodes, proxiedHealthz } from '../helpers/cluster-nodes.js';

const KUBECTLS = ['/usr/lib/google-cloud-sdk/bin/kubectl.1.33', '/usr/bin/kubectl'];
const ROOT_SIGNERS = [
  'kubernetes.io/kube-apiserver-client',
  'kubernetes.io/kube-apiserver-client-kubelet',
  'kubernetes.io/kubelet-serving',
  'trustplane.io/control-plane-component',
  'trustplane.io/kube-apiserver-serving',
];

interface Bundle {
  metadata: { name: string };
  spec: { signerName: string; trustBundle: string };
}

describe('ClusterTrustBundles through a credential rotation (real processes)', () => {
  const env = new ClusterWithNodes('tp-e2e-ctb-');
  const { tmp, dataDir } = env;
  after(() => env.cleanup());

  test('published per root signer, two certificates during a rotation, the new one after; the agent follows from them', async () => {
    const cp = await env.start();
    await cp.fleet().create({ name: 'ctb' });
    const agent = await env.join('ctb', 'ctb-n1');
    const admin = await env.admin('ctb');
    await waitFor('the node to be reachable through its tunnel', async () => ((await proxiedHealthz(admin.client, 'ctb-n1')) === 'ok' ? true : undefined), 60000, 200);
    const adminKc = join(tmp.path, 'admin.kubeconfig');
    const kubectl = (binary: string, kc: string, args: string[]) => runKubectl(kc, args, { cacheDir: mkdtempSync(join(tmp.path, 'kc-')), binary });
    const ok = async (binary: string, kc: string, args: string[]) => {
      const r = await kubectl(binary, kc, args);
      assert.equal(r.status, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    /** Per signer: the one bundle's name and the CNs of its certificates (kubectl -o json, as a user would read them). */
    const published = async (kc: string) => {
      const items = (JSON.parse(await ok(KUBECTLS[0], kc, ['get', 'clustertrustbundles', '-o', 'json'])) as { items: Bundle[] }).items;
      const bySigner = new Map<string, { name: string; cns: string[] }[]>();
      for (const b of items) {
        const cns = parseCertificates(b.spec.trustBundle).map((c) => c.subject.find((a) => a.type === 'CN')?.value ?? '');
        bySigner.set(b.spec.signerName, [...(bySigner.get(b.spec.signerName) ?? []), { name: b.metadata.name, cns }]);
      }
      return bySigner;
    };
    const expectBundles = async (kc: string, cns: string[]) => {
      const by = await published(kc);
      assert.deepEqual([...by.keys()].sort(), ROOT_SIGNERS);
      for (const [signer, bundles] of by) {
        assert.equal(bundles.length, 1, `one bundle for ${signer}`);
        assert.ok(bundles[0].name.startsWith(`${signer.replace('/', ':')}:`), bundles[0].name);
        assert.deepEqual(bundles[0].cns, cns, signer);
      }
      return by;
    };
    writeFileSync(adminKc, buildKubeconfig(admin.entry), { mode: 0o600 });

    // Before: one bundle per root signer, the one generation; both kubectls print upstream's columns.
    const before = await expectBundles(adminKc, ['ctb cluster root CA g1']);
    for (const binary of KUBECTLS) {
      const [header, ...rows] = (await ok(binary, adminKc, ['get', 'clustertrustbundles'])).trim().split('\n');
      assert.deepEqual(header.split(/\s+/), ['NAME', 'SIGNERNAME'], binary);
      assert.deepEqual(rows.map((r) => r.split(/\s+/)[1]).sort(), ROOT_SIGNERS, binary);
    }

    // The node reads them with its own credentials, and may not write one.
    const cred = join(tmp.path, 'ctb-n1', 'pki', 'kubelet-client-current.pem');
    const nodeKc = join(tmp.path, 'node.kubeconfig');
    writeFileSync(nodeKc, JSON.stringify({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'n',
      clusters: [{ name: 'c', cluster: { server: admin.entry.server, 'certificate-authority-data': Buffer.from(admin.entry.caBundle).toString('base64') } }],
      users: [{ name: 'n', user: { 'client-certificate': cred, 'client-key': cred } }],
      contexts: [{ name: 'n', context: { cluster: 'c', user: 'n' } }],
    }));
    await expectBundles(nodeKc, ['ctb cluster root CA g1']);
    const manifest = join(tmp.path, 'ctb.json');
    const b = before.get('kubernetes.io/kubelet-serving')![0];
    writeFileSync(manifest, JSON.stringify({ apiVersion: 'certificates.k8s.io/v1beta1', kind: 'ClusterTrustBundle', metadata: { name: 'kubernetes.io:kubelet-serving:mine' }, spec: { signerName: 'kubernetes.io/kubelet-serving', trustBundle: JSON.parse(await ok(KUBECTLS[0], adminKc, ['get', 'clustertrustbundle', b.name, '-o', 'json'])).spec.trustBundle } }));
    const refused = await kubectl(KUBECTLS[0], nodeKc, ['create', '-f', manifest]);
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /Forbidden.*User "system:node:ctb-n1" cannot create resource "clustertrustbundles"/);
    const patched = await kubectl(KUBECTLS[0], nodeKc, ['label', 'clustertrustbundle', b.name, 'x=y']);
    assert.notEqual(patched.status, 0);
    assert.match(patched.stderr, /Forbidden/);

    // Start: both generations in every bundle (a new object per signer), and the agent takes its new trust from one.
    const start = tp(['clusters', 'update', 'ctb', '--start-credential-rotation', '--data-dir', dataDir, '-o', 'json']);
    assert.equal(start.status, 0, start.stderr);
    const during = await expectBundles(adminKc, ['ctb cluster root CA g2', 'ctb cluster root CA g1']);
    for (const s of ROOT_SIGNERS) assert.notEqual(during.get(s)![0].name, before.get(s)![0].name, 'a new content is a new object');
    const agentLog = () => `${agent.output()}${(() => {
      try {
        return readFileSync(join(tmp.path, 'ctb-n1', 'agent.log'), 'utf8');
      } catch {
        return '';
      }
    })()}`;
    const servingBundle = during.get('trustplane.io/kube-apiserver-serving')![0].name;
    await waitFor('the agent to trust the bundle from the published ClusterTrustBundle', () => (agentLog().includes(`ClusterTrustBundle ${servingBundle}`) ? true : undefined), 60000, 200);
    assert.doesNotMatch(agentLog(), /"from":"cluster-info"/, 'the agent did not fall back to cluster-info');

    // Complete once the node moved: the new generation only. The old admin credential this test used is still seen on g1
    // (the completion gate names it, after the node gate has passed): --force then, which cuts off that admin only.
    const done = await waitFor('the node to move, so that completion is allowed', async () => {
      const c = tp(['clusters', 'update', 'ctb', '--complete-credential-rotation', '--data-dir', dataDir, '-o', 'json']);
      if (c.status === 0) return JSON.parse(c.stdout);
      if (/still hold only credentials/.test(c.stderr)) return undefined;
      if (!/client\(s\) presented generation 1/.test(c.stderr)) throw new Error(c.stderr);
      const forced = tp(['clusters', 'update', 'ctb', '--complete-credential-rotation', '--force', '--data-dir', dataDir, '-o', 'json']);
      assert.equal(forced.status, 0, forced.stderr);
      return JSON.parse(forced.stdout);
    }, 60000, 500);
    assert.equal(done.rotation.phase, 'done');
    assert.ok(!done.rotation.forced?.length, `no node was cut off: ${done.rotation.forced}`);
    const fresh = await env.admin('ctb');
    const freshKc = join(tmp.path, 'fresh.kubeconfig');
    writeFileSync(freshKc, buildKubeconfig(fresh.entry), { mode: 0o600 });
    const afterwards = await expectBundles(freshKc, ['ctb cluster root CA g2']);
    const finalServing = afterwards.get('trustplane.io/kube-apiserver-serving')![0].name;
    await waitFor('the agent to trust the new generation only, from the published bundle', () => (agentLog().includes(`ClusterTrustBundle ${finalServing}`) ? true : undefined), 60000, 200);
    const trusted = parseCertificates(readFileSync(join(tmp.path, 'ctb-n1', 'pki', 'ca.crt'), 'utf8')).map((c) => c.subject.find((a) => a.type === 'CN')?.value);
    assert.deepEqual(trusted, ['ctb cluster root CA g2']);
    assert.equal(await proxiedHealthz(fresh.client, 'ctb-n1'), 'ok', 'the node is still reachable');
    assert.equal(agent.child.exitCode, null, 'the agent was not restarted');
  });
});
