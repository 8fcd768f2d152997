// Every kubectl the machine ships (kubectl.1.27 … kubectl.1.33 and the /usr/bin/kubectl dispatcher) through the README's
// commands against one real API server: create/apply (client- and server-side), get, get -w, approve/deny, describe,
// auth whoami, api-resources, delete. kubectl before 1.29 needs /openapi/v2 (protobuf) for apply and 1.27 asks
// `auth whoami` of authentication.k8s.io/v1beta1.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../../src/util/wait.js';
import { opensslCsr } from '../helpers/openssl.js';
import { csrManifest, KUBECTL, runKubectl, startTestCluster, writeIn, type TestCluster } from './harness.js';

const BUNDLED = '/usr/lib/google-cloud-sdk/bin';
const VERSIONS = ['1.27', '1.28', '1.29', '1.30', '1.31', '1.32', '1.33'];
/** [label, binary]: the versioned binaries, called directly, and the dispatcher (which picks by the server's minor). */
const BINARIES: Array<[string, string]> = [...VERSIONS.map((v): [string, string] => [v, `${BUNDLED}/kubectl.${v}`]), ['dispatcher', KUBECTL]];

describe('every shipped kubectl through the README commands', () => {
  let c: TestCluster;
  let admin: string;
  let pem: string;

  before(async () => {
    c = await startTestCluster();
    admin = c.kubeconfig(c.admin, 'admin');
    pem = opensslCsr(c.dir, 'n1', { subj: '/CN=system:node:n1/O=system:nodes' });
  });
  after(() => c?.stop());

  it('every binary is there', () => {
    for (const [label, bin] of BINARIES) assert.ok(existsSync(bin), `${label}: ${bin}`);
  });

  for (const [label, bin] of BINARIES) {
    it(`kubectl ${label}`, async () => {
      const tag = label.replace('.', '');
      const cacheDir = mkdtempSync(join(c.dir, `kcache-${tag}-`));
      const k = (args: string[]) => runKubectl(admin, args, { cacheDir, binary: bin, timeoutMs: 60_000 });
      const ok = async (args: string[]) => {
        const r = await k(args);
        assert.equal(r.status, 0, `kubectl ${label} ${args.join(' ')} failed: ${r.stderr}`);
        return r.stdout;
      };
      const csr = `csr-${tag}`;
      const applied = `apply-${tag}`;
      const ssa = `ssa-${tag}`;
      const node = `node-${tag}`;

      assert.match(await ok(['create', '-f', writeIn(c, `${csr}.json`, csrManifest(csr, pem))]), new RegExp(`certificatesigningrequest.certificates.k8s.io/${csr} created`));
      const table = await ok(['get', 'csr']);
      assert.deepEqual(table.split('\n')[0].split(/\s+/), ['NAME', 'AGE', 'SIGNERNAME', 'REQUESTOR', 'REQUESTEDDURATION', 'CONDITION']);
      assert.match(table, new RegExp(`^${csr}\\s+\\S+\\s+kubernetes.io/kube-apiserver-client-kubelet\\s+admin\\s+<none>\\s+Pending$`, 'm'));
      const json = JSON.parse(await ok(['get', 'csr', csr, '-o', 'json']));
      assert.equal(json.kind, 'CertificateSigningRequest');
      assert.deepEqual(json.status, {});

      // Client-side apply: create, then a strategic merge patch (schema from /openapi/v2 before 1.29, v3 after).
      const m = csrManifest(applied, pem);
      assert.match(await ok(['apply', '-f', writeIn(c, `${applied}.json`, m)]), new RegExp(`${applied} created`));
      assert.match(await ok(['apply', '-f', writeIn(c, `${applied}-2.json`, { ...m, metadata: { name: applied, labels: { team: 'blue' } } })]), new RegExp(`${applied} configured`));
      assert.match(await ok(['get', 'csr', applied, '--show-labels']), /team=blue/);
      assert.match(await ok(['apply', '--server-side', '-f', writeIn(c, `${ssa}.json`, csrManifest(ssa, pem))]), new RegExp(`${ssa} serverside-applied`));

      // get -w sees the approval arrive.
      const w = spawn(bin, ['--kubeconfig', admin, '--cache-dir', cacheDir, 'get', 'csr', csr, '-w'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      w.stdout.on('data', (d) => (out += d));
      w.stderr.on('data', (d) => (err += d));
      try {
        await waitFor(`kubectl ${label} get -w to list ${csr}`, () => (w.exitCode !== null ? assert.fail(`get -w exited: ${err}`) : new RegExp(`${csr} .*Pending`).test(out) || undefined), 30_000);
        assert.match(await ok(['certificate', 'approve', csr]), new RegExp(`${csr} approved`));
        await waitFor(`kubectl ${label} get -w to show the approval`, () => new RegExp(`${csr} .*Approved`).test(out) || undefined, 30_000);
      } finally {
        w.kill('SIGKILL');
      }
      assert.match(await ok(['certificate', 'deny', applied]), new RegExp(`${applied} denied`));
      assert.match(await ok(['get', 'csr', applied]), new RegExp(`${applied} .*Denied`));

      const n = {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: node },
        status: { addresses: [{ type: 'InternalIP', address: '10.0.0.7' }], conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'ready' }], nodeInfo: { kubeletVersion: 'v1.32.0' } },
      };
      assert.match(await ok(['create', '-f', writeIn(c, `${node}.json`, n)]), new RegExp(`node/${node} created`));
      assert.match(await ok(['get', 'nodes']), new RegExp(`^${node}\\s+Ready\\s+<none>\\s+\\S+\\s+v1.32.0$`, 'm'));
      const d = await ok(['describe', 'node', node]);
      assert.match(d, new RegExp(`Name:\\s+${node}`));
      assert.match(d, /InternalIP:\s+10.0.0.7/);

      assert.match(await ok(['auth', 'whoami']), /Username\s+admin/);
      assert.match(await ok(['api-resources']), /^certificatesigningrequests\s+csr\s+certificates.k8s.io\/v1\s+false\s+CertificateSigningRequest$/m);

      for (const x of [csr, applied, ssa]) assert.match(await ok(['delete', 'csr', x]), new RegExp(`"${x}" deleted`));
      assert.match(await ok(['delete', 'node', node]), new RegExp(`"${node}" deleted`));
      const gone = await k(['get', 'csr', csr]);
      assert.notEqual(gone.status, 0);
      assert.match(gone.stderr, new RegExp(`Error from server \\(NotFound\\): certificatesigningrequests.certificates.k8s.io "${csr}" not found`));
    });
  }
});
