// kube-public/cluster-info: served anonymously when configured (kubeconfig with server and CA, tunnel URL), and only that.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { CLUSTER_INFO_PATH, startApiServer, type RunningApiServer } from '../../src/apiserver/index.js';
import { call, startTestCluster, type TestCluster } from './harness.js';

describe('cluster-info', () => {
  let c: TestCluster;
  let api: RunningApiServer;
  let tunnel = '';

  before(async () => {
    c = await startTestCluster();
    const serving = c.ca.issue('apiserver-ci', { cn: 'kube-apiserver', sans: ['IP:127.0.0.1'], eku: ['serverAuth'] });
    // A second API server on the same store (replicas share it), this one with cluster-info configured.
    api = await startApiServer({
      cluster: 'test',
      tls: { cert: serving.cert, key: serving.key },
      clientCa: c.ca.cert,
      store: c.store,
      clusterInfo: () => ({ caBundle: c.ca.cert, server: api.url, tunnelServer: tunnel }),
    });
  });
  after(async () => {
    await api?.close();
    await c?.stop();
  });

  const on = () => ({ api, ca: c.ca });

  it('answers without credentials with a v1 ConfigMap holding a kubeconfig (server, CA) and the tunnel server', async () => {
    const r = await call(on(), {}, 'GET', CLUSTER_INFO_PATH);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.kind, 'ConfigMap');
    assert.equal(r.json.apiVersion, 'v1');
    assert.deepEqual(r.json.metadata, { name: 'cluster-info', namespace: 'kube-public' });
    const kc = parse(r.json.data.kubeconfig);
    assert.equal(kc.kind, 'Config');
    assert.equal(kc.clusters[0].cluster.server, api.url);
    assert.equal(Buffer.from(kc.clusters[0].cluster['certificate-authority-data'], 'base64').toString('utf8'), c.ca.cert);
    assert.equal(r.json.data['trustplane.io/tunnel-server'], '');
    assert.ok(!/PRIVATE KEY/.test(r.text));

    tunnel = 'https://127.0.0.1:4443';
    const again = await call(on(), {}, 'GET', `${CLUSTER_INFO_PATH}/`);
    assert.equal(again.json.data['trustplane.io/tunnel-server'], tunnel, 'read per request');
  });

  it('is the only anonymous object: writes to it, other configmaps and other namespaces still need credentials', async () => {
    assert.equal((await call(on(), {}, 'PUT', CLUSTER_INFO_PATH, { body: { kind: 'ConfigMap', apiVersion: 'v1', metadata: { name: 'cluster-info' } } })).status, 401);
    assert.equal((await call(on(), {}, 'GET', '/api/v1/namespaces/kube-public/configmaps/other')).status, 401);
    assert.equal((await call(on(), {}, 'GET', '/api/v1/namespaces/kube-system/configmaps/cluster-info')).status, 401);
    assert.equal((await call(on(), {}, 'GET', '/api/v1/nodes')).status, 401);
  });

  it('is not served by an API server started without clusterInfo', async () => {
    assert.equal((await call(c, {}, 'GET', CLUSTER_INFO_PATH)).status, 401);
    assert.equal((await call(c, c.admin, 'GET', CLUSTER_INFO_PATH)).status, 404);
  });
});
