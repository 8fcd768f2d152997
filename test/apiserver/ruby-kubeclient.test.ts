// A client library nobody here wrote: Debian's ruby-kubeclient runs the CSR flow (list nodes, create, approve through
// /approval, watch until the signer issues, delete) against a real API server with the CSR controllers and CA service.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startControllers, type RunningControllers } from '../../src/controllers/index.js';
import { opensslCsr } from '../helpers/openssl.js';
import { startSigningCa, type SigningCa } from '../controllers/helpers.js';
import { call, runCommand, startTestCluster, type TestCluster } from './harness.js';

/** The script lives in the source tree (test/apiserver/ruby), not in dist. */
const SCRIPT = join(fileURLToPath(new URL('.', import.meta.url)), '../../../test/apiserver/ruby/csr-flow.rb');

const runRuby = (args: string[], timeoutMs: number) =>
  runCommand('ruby', [SCRIPT, ...args], { timeoutMs, onSpawnError: 'could not run ruby (is ruby-kubeclient installed? .ci/run installs it)' });

describe('ruby-kubeclient', () => {
  let c: TestCluster;
  let sca: SigningCa;
  let controllers: RunningControllers;

  before(async () => {
    [c, sca] = await Promise.all([startTestCluster(), startSigningCa('ruby')]);
    controllers = await startControllers({ cluster: 'ruby', store: c.store, ca: sca.backend, tuning: { retryBaseMs: 50, retryMaxMs: 500 } });
    await controllers.synced();
  });
  after(async () => {
    await controllers?.stop();
    await c?.stop();
    await sca?.stop();
  });

  it('lists nodes, creates a CSR, approves it through /approval, watches until issued, deletes it', async () => {
    const node = await call(c, c.admin, 'POST', '/api/v1/nodes', { body: { apiVersion: 'v1', kind: 'Node', metadata: { name: 'ruby-node-1' } } });
    assert.equal(node.status, 201, node.text);
    const files = { ca: join(c.dir, 'ruby-ca.pem'), cert: join(c.dir, 'ruby-admin.pem'), key: join(c.dir, 'ruby-admin.key') };
    writeFileSync(files.ca, c.ca.cert);
    writeFileSync(files.cert, c.admin.cert);
    writeFileSync(files.key, c.admin.key, { mode: 0o600 });
    opensslCsr(c.dir, 'ruby-client', { subj: '/CN=ruby-client' });
    const r = await runRuby([c.api.url, files.ca, files.cert, files.key, join(c.dir, 'ruby-client.csr'), 'ruby-csr'], 90_000);
    assert.equal(r.status, 0, `ruby exited ${r.status}\n${r.stdout}\n${r.stderr}`);
    const lines = r.stdout.trim().split('\n');
    assert.deepEqual(lines.map((l) => l.split(' ')[0]), ['nodes', 'created', 'approved', 'issued', 'deleted'], r.stdout);
    assert.match(lines[0], /^nodes .*\bruby-node-1\b/);
    assert.equal(lines[1], 'created ruby-csr status={}');
    assert.equal(lines[2], 'approved Approved');
    assert.match(lines[3], /^issued \/CN=ruby-client by /);
    assert.equal(lines[4], 'deleted ruby-csr');
    assert.equal(await c.store.get('/registry/certificatesigningrequests/ruby-csr'), null);
  });
});
