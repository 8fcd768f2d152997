// The fleet commands as a user runs them against real processes: clusters, get-credentials with kubectl, node pools and
// bootstrap tokens, the controllers approving and signing, openssl verifying, and clusters refusing each other's credentials.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { waitFor } from '../../src/util/wait.js';
import { tp } from '../helpers/cli.js';
import { startControlPlane, type ControlPlane } from '../helpers/control-plane.js';
import { opensslCsr, opensslVerify } from '../helpers/openssl.js';
import { tempDir } from '../helpers/tmp.js';

const KUBECTL = '/usr/bin/kubectl';

describe('fleet commands: clusters, get-credentials, node-pools (real processes, real kubectl)', () => {
  const tmp = tempDir('tp-e2e-fleet-');
  const dataDir = join(tmp.path, 'data');
  let cp: ControlPlane;
  const kc = join(tmp.path, 'kube', 'config');

  const tpj = (args: string[], env?: NodeJS.ProcessEnv) => {
    const r = tp([...args, '--data-dir', dataDir, '-o', 'json'], { env });
    assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  const kubectl = (kubeconfig: string, args: string[], input?: string) => {
    const r = spawnSync(KUBECTL, ['--kubeconfig', kubeconfig, '--cache-dir', mkdtempSync(join(tmp.path, 'cache-')), ...args], { input: input ?? '', encoding: 'utf8', timeout: 30000 });
    return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  };
  const ok = (kubeconfig: string, args: string[], input?: string) => {
    const r = kubectl(kubeconfig, args, input);
    assert.equal(r.status, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const csrYaml = (name: string, csrPem: string, signerName: string, usages: string[]) =>
    JSON.stringify({
      apiVersion: 'certificates.k8s.io/v1',
      kind: 'CertificateSigningRequest',
      metadata: { name },
      spec: { request: Buffer.from(csrPem).toString('base64'), signerName, usages },
    });
  const tokenKubeconfig = (name: string, server: string, caBundle: string, token: string) => {
    const path = join(tmp.path, `${name}.kubeconfig`);
    const caFile = join(tmp.path, `${name}-ca.crt`);
    writeFileSync(caFile, caBundle);
    writeFileSync(
      path,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'c', cluster: { server, 'certificate-authority': caFile } }],
        users: [{ name: 'u', user: { token } }],
        contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
        'current-context': 'x',
      }),
    );
    return path;
  };

  before(async () => {
    cp = await startControlPlane(dataDir);
  });
  after(async () => {
    await cp?.stop();
    tmp.remove();
  });

  test('clusters create runs a cluster; get-credentials merges a kubeconfig kubectl uses as is', () => {
    const created = tpj(['clusters', 'create', 'alpha']);
    assert.equal(created.status, 'RUNNING');
    // An existing kubeconfig with someone else's entry: merged, not overwritten.
    mkdirSync(join(tmp.path, 'kube'), { recursive: true });
    writeFileSync(kc, 'apiVersion: v1\nkind: Config\nclusters:\n- name: other\n  cluster:\n    server: https://example.invalid\ncontexts:\n- name: other\n  context:\n    cluster: other\n    user: other\nusers:\n- name: other\n  user:\n    token: abc\ncurrent-context: other\n');
    const got = tpj(['clusters', 'get-credentials', 'alpha'], { KUBECONFIG: kc });
    assert.equal(got.kubeconfig, kc);
    assert.equal(got.context, 'trustplane_alpha');
    assert.equal(statSync(kc).mode & 0o777, 0o600);
    const doc = parse(readFileSync(kc, 'utf8'));
    assert.deepEqual(doc.contexts.map((c: { name: string }) => c.name).sort(), ['other', 'trustplane_alpha']);
    assert.equal(doc['current-context'], 'trustplane_alpha');
    const who = JSON.parse(ok(kc, ['auth', 'whoami', '-o', 'json']));
    assert.equal(who.status.userInfo.username, 'admin');
    assert.ok(who.status.userInfo.groups.includes('system:masters'));
    assert.match(ok(kc, ['api-resources']), /certificatesigningrequests\s+csr\s+certificates\.k8s\.io\/v1\s+false\s+CertificateSigningRequest/);
    // Without --kubeconfig and without $KUBECONFIG it is ~/.kube/config, as gcloud does.
    const home = join(tmp.path, 'home');
    const r = tp(['clusters', 'get-credentials', 'alpha', '--data-dir', dataDir], { env: { HOME: home, KUBECONFIG: '' } });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`kubeconfig entry generated for alpha in ${join(home, '.kube', 'config')}`));
    assert.equal(JSON.parse(ok(join(home, '.kube', 'config'), ['auth', 'whoami', '-o', 'json'])).status.userInfo.username, 'admin');
  });

  test('a CSR made with openssl and approved with kubectl is signed by the controllers and verifies against the bundle describe prints', async () => {
    const pem = opensslCsr(tmp.path, 'alice', { subj: '/O=dev/CN=alice' });
    assert.match(ok(kc, ['create', '-f', '-'], csrYaml('alice', pem, 'kubernetes.io/kube-apiserver-client', ['digital signature', 'client auth'])), /alice created/);
    assert.match(ok(kc, ['get', 'csr', 'alice']), /alice\s.*Pending/);
    assert.match(ok(kc, ['certificate', 'approve', 'alice']), /alice approved/);
    const cert = await waitFor('the signer to issue alice', () => {
      const b64 = kubectl(kc, ['get', 'csr', 'alice', '-o', 'jsonpath={.status.certificate}']).stdout;
      return b64 ? Buffer.from(b64, 'base64').toString('utf8') : undefined;
    }, 30000);
    const bundle = tp(['clusters', 'describe', 'alpha', '--bundle', 'root', '--data-dir', dataDir]).stdout;
    const v = opensslVerify(tmp.path, { roots: bundle, leaf: cert, purpose: 'sslclient' });
    assert.ok(v.ok, v.output);
    assert.match(ok(kc, ['get', 'csr', 'alice']), /Approved,Issued/);
  });

  test('node-pools create / list / bootstrap-token / delete; a token joins a node through the approver and signer', async () => {
    assert.equal(tpj(['node-pools', 'create', 'gpu', '--cluster', 'alpha']).name, 'gpu');
    assert.deepEqual(tpj(['node-pools', 'list', '--cluster', 'alpha']).map((p: { name: string }) => p.name), ['default-pool', 'gpu']);
    // What a pool's nodes' serving certificates may name: none by default, set at creation or later.
    assert.equal(tpj(['node-pools', 'list', '--cluster', 'alpha']).find((p: { name: string }) => p.name === 'gpu').allowedCidrs, undefined);
    const edge = tpj(['node-pools', 'create', 'edge', '--cluster', 'alpha', '--allowed-cidr', '10.8.0.0/16', '--dns-suffix', '.Nodes.Example.com']);
    assert.deepEqual([edge.allowedCidrs, edge.dnsSuffixes], [['10.8.0.0/16'], ['nodes.example.com']]);
    const updated = tpj(['node-pools', 'update', 'edge', '--cluster', 'alpha', '--allowed-cidr', '10.8.0.0/16,fd00:8::/64', '--clear-dns-suffixes']);
    assert.deepEqual([updated.allowedCidrs, updated.dnsSuffixes], [['10.8.0.0/16', 'fd00:8::/64'], undefined]);
    const badCidr = tp(['node-pools', 'update', 'edge', '--cluster', 'alpha', '--allowed-cidr', '10.8.0.0/33', '--data-dir', dataDir]);
    assert.equal(badCidr.status, 2);
    assert.match(badCidr.stderr, /"10\.8\.0\.0\/33": the prefix length is too long for the address/);
    tpj(['node-pools', 'delete', 'edge', '--cluster', 'alpha']);
    const t = tpj(['node-pools', 'bootstrap-token', 'gpu', '--cluster', 'alpha', '--ttl', '1h']);
    assert.match(t.token, /^[a-z0-9]{6}\.[a-z0-9]{16}$/);
    const described = tpj(['clusters', 'describe', 'alpha']);
    assert.equal(t.caCertHash, described.caCertHash);
    assert.equal(t.joinCommand, `trustplane node join --server ${described.endpoint} --token ${t.token} --ca-cert-hash ${described.caCertHash}`);
    const plain = tp(['node-pools', 'bootstrap-token', 'gpu', '--cluster', 'alpha', '--data-dir', dataDir]);
    assert.match(plain.stdout, /trustplane node join --server https:\/\/127\.0\.0\.1:\d+ --token [a-z0-9]{6}\.[a-z0-9]{16} --ca-cert-hash sha256:[0-9a-f]{64}/);

    const bundle = described.authorities.find((a: { kind: string }) => a.kind === 'root').bundle;
    const tokenKc = tokenKubeconfig('joiner', described.endpoint, bundle, t.token);
    // Not a node credential: the approver leaves it for an admin (checked once the node CSR made after it is issued).
    ok(kc, ['create', '-f', '-'], csrYaml('bob', opensslCsr(tmp.path, 'bob', { subj: '/CN=bob' }), 'kubernetes.io/kube-apiserver-client', ['digital signature', 'client auth']));
    const pem = opensslCsr(tmp.path, 'n1', { subj: '/O=system:nodes/CN=system:node:gpu-1' });
    ok(tokenKc, ['create', '-f', '-'], csrYaml('node-csr-gpu-1', pem, 'kubernetes.io/kube-apiserver-client-kubelet', ['digital signature', 'client auth']));
    const cert = await waitFor('the node CSR to be approved and issued', () => {
      const b64 = kubectl(tokenKc, ['get', 'csr', 'node-csr-gpu-1', '-o', 'jsonpath={.status.certificate}']).stdout;
      return b64 ? Buffer.from(b64, 'base64').toString('utf8') : undefined;
    }, 30000);
    assert.ok(opensslVerify(tmp.path, { roots: bundle, leaf: cert, purpose: 'sslclient' }).ok);
    assert.match(ok(kc, ['get', 'csr', 'node-csr-gpu-1', '-o', 'jsonpath={.status.conditions[0].reason}']), /AutoApproved/);
    assert.match(ok(kc, ['get', 'csr', 'bob']), /bob\s.*Pending/);

    const del = tpj(['node-pools', 'delete', 'gpu', '--cluster', 'alpha']);
    assert.equal(del.tokensDeleted, 2);
    const refused = kubectl(tokenKc, ['get', 'csr', 'node-csr-gpu-1']);
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /Unauthorized|must be logged in/);
  });

  test('bad input to the fleet commands: which command, what was wrong, what to do', () => {
    const noPool = tp(['node-pools', 'bootstrap-token', 'nope', '--cluster', 'alpha', '--data-dir', dataDir]);
    assert.equal(noPool.status, 4);
    assert.match(noPool.stderr, /error: cluster "alpha" has no node pool "nope"\nhint: list them with/);
    const badTtl = tp(['node-pools', 'bootstrap-token', 'default-pool', '--cluster', 'alpha', '--ttl', '10s', '--data-dir', dataDir]);
    assert.equal(badTtl.status, 2);
    assert.match(badTtl.stderr, /TTL 10s is out of range/);
    const noCluster = tp(['clusters', 'get-credentials', 'nope', '--kubeconfig', join(tmp.path, 'x'), '--data-dir', dataDir]);
    assert.equal(noCluster.status, 4);
    const dupPool = tp(['node-pools', 'create', 'default-pool', '--cluster', 'alpha', '--data-dir', dataDir]);
    assert.equal(dupPool.status, 5);
    const badStore = tp(['clusters', 'create', 'x1', '--store', 'etcd', '--data-dir', dataDir]);
    assert.equal(badStore.status, 2);
    assert.match(badStore.stderr, /--store etcd needs --etcd-endpoints/);
    const plainHttp = tp(['clusters', 'create', 'x1', '--store', 'etcd', '--etcd-endpoints', 'http://127.0.0.1:2379', '--data-dir', dataDir]);
    assert.equal(plainHttp.status, 2);
    assert.match(plainHttp.stderr, /is not https/);
    assert.equal(tp(['clusters', 'describe', 'x1', '--data-dir', dataDir]).status, 4, 'nothing was created');
    const broken = join(tmp.path, 'broken.kubeconfig');
    writeFileSync(broken, 'clusters: [unclosed');
    const r = tp(['clusters', 'get-credentials', 'alpha', '--kubeconfig', broken, '--data-dir', dataDir]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /is not a valid kubeconfig/);
    assert.equal(readFileSync(broken, 'utf8'), 'clusters: [unclosed', 'a file it cannot read is left as it was');
  });

  test("two clusters on one host: each refuses the other's admin certificate and bootstrap token", () => {
    const beta = tpj(['clusters', 'create', 'beta']);
    const betaKc = join(tmp.path, 'beta.kubeconfig');
    tpj(['clusters', 'get-credentials', 'beta', '--kubeconfig', betaKc]);
    const alpha = tpj(['clusters', 'describe', 'alpha']);
    // alpha's admin credential pointed at beta's server (trusting beta's CA, so only the client cert is at stake).
    const doc = parse(readFileSync(kc, 'utf8'));
    const alphaUser = doc.users.find((u: { name: string }) => u.name === 'trustplane_alpha').user;
    const betaCaFile = join(tmp.path, 'beta-ca.crt');
    writeFileSync(betaCaFile, beta.authorities.find((a: { kind: string }) => a.kind === 'root').bundle);
    const cross = join(tmp.path, 'cross.kubeconfig');
    writeFileSync(
      cross,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'b', cluster: { server: beta.endpoint, 'certificate-authority': betaCaFile } }],
        users: [{ name: 'a', user: alphaUser }],
        contexts: [{ name: 'x', context: { cluster: 'b', user: 'a' } }],
        'current-context': 'x',
      }),
    );
    const r = kubectl(cross, ['get', 'csr']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /Unauthorized|must be logged in/);
    assert.equal(kubectl(betaKc, ['get', 'csr']).status, 0, "beta's own admin works");
    const t = tpj(['node-pools', 'bootstrap-token', 'default-pool', '--cluster', 'alpha']);
    const betaBundle = beta.authorities.find((a: { kind: string }) => a.kind === 'root').bundle;
    const tokenAtBeta = tokenKubeconfig('alpha-token-at-beta', beta.endpoint, betaBundle, t.token);
    const r2 = kubectl(tokenAtBeta, ['get', 'csr']);
    assert.notEqual(r2.status, 0);
    assert.match(r2.stderr, /Unauthorized|must be logged in/);
    assert.notEqual(alpha.caCertHash, beta.caCertHash);
  });
});
