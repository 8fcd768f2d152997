// Where a node reads its trust bundle: the published ClusterTrustBundle of the API server's serving signer that the trust
// header names, else cluster-info (none fits yet, or a host that serves no ClusterTrustBundles answers 404).
import assert from 'node:assert/strict';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { clusterInfoConfigMap, CLUSTER_INFO_PATH, trustBundleDigest } from '../../src/apiserver/index.js';
import { ClusterTrustBundleRegistry } from '../../src/apiserver/registry/cluster-trust-bundle.js';
import { ApiClient } from '../../src/node/api-client.js';
import { NODE_TRUST_SIGNER, readTrustBundle } from '../../src/node/trust-bundle-source.js';
import { serverOptions } from '../../src/tls/policy.js';
import { makeOpensslCa } from '../helpers/openssl-certs.js';
import { startNodeTestCluster, type NodeTestCluster } from './cluster.js';

describe('the node trust bundle source', () => {
  let c: NodeTestCluster;
  let api: ApiClient;
  let reg: ClusterTrustBundleRegistry;
  let node: { cert: string; key: string };
  // A bundle that differs from cluster-info's: the root and one more CA, as during a rotation.
  const extra = makeOpensslCa('next generation stand-in').cert;

  before(async () => {
    c = await startNodeTestCluster();
    node = await c.issue('kubernetes.io/kube-apiserver-client-kubelet', [{ type: 'O', value: 'system:nodes' }, { type: 'CN', value: 'system:node:src-1' }]);
    api = new ApiClient(c.api.url, { cert: node.cert, key: node.key, ca: c.bundle });
    reg = new ClusterTrustBundleRegistry(c.base.store);
  });
  after(async () => {
    api?.close();
    await c?.stop();
  });

  it('nothing published: cluster-info', async () => {
    const r = await readTrustBundle(api, c.api.url);
    assert.deepEqual(r, { pem: c.bundle, source: 'cluster-info' });
  });

  it('the published bundle the header names, by its digest; the one bundle when no digest is given', async () => {
    const pem = c.bundle + extra;
    const p = await reg.publish(NODE_TRUST_SIGNER, pem);
    // Another signer's bundle with the same content is not the node's source.
    await reg.publish('kubernetes.io/kube-apiserver-client', c.bundle);
    assert.deepEqual(await readTrustBundle(api, c.api.url, trustBundleDigest(pem)), { pem, source: `ClusterTrustBundle ${p.name}` });
    assert.deepEqual(await readTrustBundle(api, c.api.url), { pem, source: `ClusterTrustBundle ${p.name}` });
    // A header naming a bundle that is not published (yet): cluster-info.
    assert.deepEqual(await readTrustBundle(api, c.api.url, trustBundleDigest(c.bundle)), { pem: c.bundle, source: 'cluster-info' });
  });

  it('a certificate the server does not take (401): the anonymous cluster-info, so the node can join again', async () => {
    const stranger = makeOpensslCa('not this cluster').issue('stranger', { cn: 'system:node:src-1', o: 'system:nodes', eku: ['clientAuth'] });
    const refusedApi = new ApiClient(c.api.url, { cert: stranger.cert, key: stranger.key, ca: c.bundle });
    try {
      assert.deepEqual(await readTrustBundle(refusedApi, c.api.url, trustBundleDigest(c.bundle + extra)), { pem: c.bundle, source: 'cluster-info' });
    } finally {
      refusedApi.close();
    }
  });

  it('a host that serves no ClusterTrustBundles (404): cluster-info, as before', async () => {
    const serving = await c.issue('trustplane.io/kube-apiserver-serving', [{ type: 'CN', value: 'old-host' }], { dns: ['localhost'], ip: ['127.0.0.1'] });
    const paths: string[] = [];
    const old = createServer(serverOptions({ cert: serving.cert, key: serving.key, ca: c.bundle, clientCert: 'none' }), (req, res) => {
      paths.push(req.url ?? '');
      if (req.url === CLUSTER_INFO_PATH) {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        return res.end(JSON.stringify(clusterInfoConfigMap({ caBundle: c.bundle, server: 'https://127.0.0.1' })));
      }
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404, message: 'the server could not find the requested resource' }));
    });
    await new Promise<void>((r) => old.listen(0, '127.0.0.1', r));
    const url = `https://127.0.0.1:${(old.address() as AddressInfo).port}`;
    const oldApi = new ApiClient(url, { cert: node.cert, key: node.key, ca: c.bundle });
    try {
      assert.deepEqual(await readTrustBundle(oldApi, url, trustBundleDigest(c.bundle + extra)), { pem: c.bundle, source: 'cluster-info' });
      assert.match(paths[0], /^\/apis\/certificates.k8s.io\/v1beta1\/clustertrustbundles\?fieldSelector=spec.signerName%3Dtrustplane.io%2Fkube-apiserver-serving$/);
      assert.equal(paths[1], CLUSTER_INFO_PATH);
    } finally {
      oldApi.close();
      await new Promise<void>((r) => {
        old.close(() => r());
        old.closeAllConnections();
      });
    }
  });
});
