// Three clusters at once: every credential of each (admin cert, node cert, bootstrap token) is refused by the other two.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createBootstrapToken } from '../../src/apiserver/index.js';
import { call, startTestCluster, type Credentials, type TestCluster } from './harness.js';

describe('isolation between clusters', () => {
  const clusters: TestCluster[] = [];
  const creds: Array<Record<'admin' | 'node' | 'token', Credentials>> = [];

  before(async () => {
    for (let i = 0; i < 3; i++) {
      const c = await startTestCluster();
      clusters.push(c);
      const t = await createBootstrapToken(c.store, { pool: 'default', ttlSeconds: 600 });
      creds.push({ admin: c.admin, node: c.node('n1'), token: { token: t.token } });
    }
  });
  after(async () => {
    for (const c of clusters) await c.stop();
  });

  it('each credential works on its own cluster and is refused (401) by every other one', async () => {
    const path = '/apis/certificates.k8s.io/v1/certificatesigningrequests';
    for (let owner = 0; owner < 3; owner++) {
      for (const [kind, cr] of Object.entries(creds[owner])) {
        for (let target = 0; target < 3; target++) {
          const r = await call(clusters[target], cr, 'GET', path);
          const want = owner === target ? 200 : 401;
          assert.equal(r.status, want, `${kind} of cluster ${owner} against cluster ${target}: ${r.text}`);
        }
      }
    }
  });

  it('kubectl with another cluster\'s admin certificate is told to log in', async () => {
    const [a, b] = clusters;
    const k = await b.kubectl(b.kubeconfig(a.admin), ['get', 'csr']);
    assert.notEqual(k.status, 0);
    assert.match(k.stderr, /You must be logged in to the server/);
  });
});
