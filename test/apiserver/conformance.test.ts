// Conformance with Kubernetes clients at the HTTP level: query parameters as kube-apiserver reads them, the fields a fresh
// object always carries (status {}, uid, creationTimestamp, managedFields), kind/apiVersion defaulted from the path.
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../../src/util/wait.js';
import { opensslCsr } from '../helpers/openssl.js';
import { call, csrManifest, startTestCluster, type TestCluster } from './harness.js';

const CSRS = '/apis/certificates.k8s.io/v1/certificatesigningrequests';

interface ManagedFieldsEntry {
  manager: string;
  operation: string;
  apiVersion: string;
  time: string;
  fieldsType: string;
  fieldsV1: Record<string, unknown>;
  subresource?: string;
}

describe('conformance with Kubernetes clients', () => {
  let c: TestCluster;
  let pem: string;
  let seq = 0;

  before(async () => {
    c = await startTestCluster();
    pem = opensslCsr(c.dir, 'n1', { subj: '/CN=system:node:n1/O=system:nodes' });
  });
  after(() => c?.stop());

  const name = (prefix: string) => `${prefix}-${seq++}`;
  const createCsr = async (n: string, query = '') => {
    const r = await call(c, c.admin, 'POST', `${CSRS}${query}`, { body: csrManifest(n, pem) });
    assert.equal(r.status, 201, r.text);
    return r.json;
  };

  /**
   * Opens a streaming GET and collects its lines until `enough` says so (or the server ends the response); the request is
   * then destroyed. Bounded by waitFor's deadline.
   */
  async function stream(path: string, enough: (lines: string[]) => boolean): Promise<{ status: number; contentType: string; lines: string[] }> {
    const url = new URL(path, c.api.url);
    let buf = '';
    let ended = false;
    let status = 0;
    let contentType = '';
    const req = httpsRequest({ method: 'GET', host: url.hostname, port: url.port, path: url.pathname + url.search, ca: c.ca.cert, cert: c.admin.cert, key: c.admin.key, agent: false }, (res) => {
      status = res.statusCode ?? 0;
      contentType = String(res.headers['content-type'] ?? '');
      res.setEncoding('utf8');
      res.on('data', (d) => (buf += d));
      res.on('end', () => (ended = true));
      res.on('error', () => (ended = true));
    });
    req.on('error', () => (ended = true));
    req.end();
    const lines = () => buf.split('\n').filter(Boolean);
    try {
      await waitFor(`lines from ${path}`, () => (ended || enough(lines()) ? true : undefined), 15_000);
    } finally {
      req.destroy();
    }
    return { status, contentType, lines: lines() };
  }

  it('?watch=True (and any value but "0"/"false") is a watch, not a list', async () => {
    const n = name('w');
    await createCsr(n);
    for (const v of ['True', 'TRUE', '1', 't', 'yes']) {
      const r = await stream(`${CSRS}?watch=${v}&fieldSelector=metadata.name%3D${n}`, (l) => l.length >= 1);
      assert.equal(r.status, 200, v);
      const ev = JSON.parse(r.lines[0]);
      assert.equal(ev.type, 'ADDED', `watch=${v}: a watch event, not a ${ev.kind}`);
      assert.equal(ev.object.metadata.name, n);
    }
    for (const v of ['false', 'False', '0']) {
      const r = await call(c, c.admin, 'GET', `${CSRS}?watch=${v}`);
      assert.equal(r.status, 200);
      assert.equal(r.json.kind, 'CertificateSigningRequestList', `watch=${v} is a list`);
    }
  });

  it('bad parameter values: 400 naming the parameter (conversion), 422 for options that do not go together', async () => {
    const cases: Array<[string, number, RegExp]> = [
      [`${CSRS}?limit=ten`, 400, /^limit: Invalid value: "ten"/],
      [`${CSRS}?watch=1&timeoutSeconds=soon`, 400, /^timeoutSeconds: Invalid value: "soon"/],
      [`${CSRS}?resourceVersion=abc`, 400, /resourceVersion "abc" is not a valid resource version/],
      [`${CSRS}?resourceVersionMatch=Exact`, 422, /^ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided/],
      [`${CSRS}?sendInitialEvents=true`, 422, /sendInitialEvents is forbidden for list/],
      [`${CSRS}?continue=xyz`, 400, /^continue: Invalid value: "xyz": invalid continue token/],
      [`${CSRS}?timeout=forever`, 400, /invalid timeout specified in the request URL/],
      [`/api/v1/nodes/x?resourceVersion=latest`, 400, /resourceVersion "latest" is not a valid resource version/],
    ];
    for (const [path, code, message] of cases) {
      const r = await call(c, c.admin, 'GET', path);
      assert.equal(r.status, code, `${path}: ${r.text}`);
      assert.equal(r.json.kind, 'Status');
      assert.equal(r.json.reason, code === 400 ? 'BadRequest' : 'Invalid');
      assert.match(r.json.message, message, path);
    }
    const writes: Array<[string, string, unknown, string | undefined, RegExp]> = [
      ['POST', `${CSRS}?dryRun=Yes`, csrManifest(name('d'), pem), undefined, /^CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value/],
      ['POST', `${CSRS}?fieldValidation=strict`, csrManifest(name('d'), pem), undefined, /fieldValidation: Unsupported value: "strict"/],
      ['PATCH', `${CSRS}/x?force=true`, {}, 'application/merge-patch+json', /^PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch/],
      ['PATCH', `${CSRS}/x`, csrManifest('x', pem), 'application/apply-patch+yaml', /fieldManager: Required value: is required for apply patch/],
      ['DELETE', `${CSRS}/x?propagationPolicy=Sideways`, undefined, undefined, /^DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "Sideways"/],
    ];
    const before = (await c.store.getPrefix('/registry/')).revision;
    for (const [method, path, body, contentType, message] of writes) {
      const r = await call(c, c.admin, method, path, body === undefined ? {} : { body, contentType });
      assert.equal(r.status, 422, `${method} ${path}: ${r.text}`);
      assert.match(r.json.message, message);
    }
    assert.equal((await c.store.getPrefix('/registry/')).revision, before, 'nothing was written');
  });

  it('a list at an exact resourceVersion is the list as it was; one the store has not reached is a 504 Too large resource version', async () => {
    const first = await createCsr(name('x'));
    const rv = first.metadata.resourceVersion;
    const later = await createCsr(name('x'));
    const at = await call(c, c.admin, 'GET', `${CSRS}?resourceVersion=${rv}&resourceVersionMatch=Exact`);
    assert.equal(at.status, 200, at.text);
    const names = at.json.items.map((i: { metadata: { name: string } }) => i.metadata.name);
    assert.ok(names.includes(first.metadata.name));
    assert.ok(!names.includes(later.metadata.name), 'an object created after that revision is not in it');
    assert.equal(at.json.metadata.resourceVersion, rv);
    const future = await call(c, c.admin, 'GET', `${CSRS}?resourceVersion=99999999&resourceVersionMatch=Exact`);
    assert.equal(future.status, 504, future.text);
    assert.match(future.json.message, /^Too large resource version: 99999999, current: \d+$/);
    assert.doesNotMatch(future.text, /127\.0\.0\.1/, 'the store endpoint is not in the reply');
  });

  it('sendInitialEvents: the current objects, then a bookmark marking their end (the watch-list protocol)', async () => {
    const n = name('si');
    await createCsr(n);
    const r = await stream(`${CSRS}?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&fieldSelector=metadata.name%3D${n}`, (l) =>
      l.some((x) => JSON.parse(x).type === 'BOOKMARK'),
    );
    const events = r.lines.map((l) => JSON.parse(l));
    assert.deepEqual(events.map((e) => e.type), ['ADDED', 'BOOKMARK']);
    assert.equal(events[0].object.metadata.name, n);
    const mark = events[1].object;
    assert.equal(mark.kind, 'CertificateSigningRequest');
    assert.equal(mark.metadata.annotations['k8s.io/initial-events-end'], 'true');
    assert.ok(BigInt(mark.metadata.resourceVersion) >= BigInt(events[0].object.metadata.resourceVersion));
  });

  it('a new CSR carries status {}, uid, creationTimestamp and the managedFields entry of its field manager', async () => {
    const n = name('fresh');
    const created = await createCsr(n, '?fieldManager=test-creator');
    for (const obj of [created, (await call(c, c.admin, 'GET', `${CSRS}/${n}`)).json]) {
      assert.deepEqual(obj.status, {}, 'status is there, empty, for a client to fill in');
      assert.match(obj.metadata.uid, /^[0-9a-f-]{36}$/);
      assert.match(obj.metadata.creationTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      const mf = obj.metadata.managedFields as ManagedFieldsEntry[];
      assert.equal(mf.length, 1);
      assert.deepEqual({ ...mf[0], time: 'T', fieldsV1: 'F' }, { manager: 'test-creator', operation: 'Update', apiVersion: 'certificates.k8s.io/v1', time: 'T', fieldsType: 'FieldsV1', fieldsV1: 'F' });
      assert.match(mf[0].time, /Z$/);
      const spec = (mf[0].fieldsV1 as { 'f:spec': Record<string, unknown> })['f:spec'];
      assert.deepEqual(spec['f:signerName'], {});
      assert.equal(spec['f:username'], undefined, 'the server sets spec.username: the creator does not own it');
    }
    // A client that sets status.conditions on what it read (as a client library does) sends it back for approval.
    const read = (await call(c, c.admin, 'GET', `${CSRS}/${n}`)).json;
    read.status.conditions = [{ type: 'Approved', status: 'True', reason: 'ClientApprove', message: 'approved by a client' }];
    const approved = await call(c, c.admin, 'PUT', `${CSRS}/${n}/approval?fieldManager=approver`, { body: read });
    assert.equal(approved.status, 200, approved.text);
    const mf = approved.json.metadata.managedFields as ManagedFieldsEntry[];
    assert.deepEqual(mf.map((e) => [e.manager, e.operation, e.subresource]), [['test-creator', 'Update', undefined], ['approver', 'Update', 'approval']]);
    assert.deepEqual(mf[1].fieldsV1, { 'f:status': { 'f:conditions': {} } });
  });

  it('a write without fieldManager is recorded under the User-Agent product; server-side apply as an Apply entry', async () => {
    const n = name('ua');
    const r = await call(c, c.admin, 'POST', CSRS, { body: csrManifest(n, pem), headers: { 'User-Agent': 'ruby-kubeclient/4.9.3 (linux)' } });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.metadata.managedFields[0].manager, 'ruby-kubeclient');
    const applied = { ...csrManifest(n, pem), metadata: { name: n, labels: { team: 'blue' } } };
    const a = await call(c, c.admin, 'PATCH', `${CSRS}/${n}?fieldManager=applier`, { body: applied, contentType: 'application/apply-patch+yaml' });
    assert.equal(a.status, 200, a.text);
    const entry = (a.json.metadata.managedFields as ManagedFieldsEntry[]).find((e) => e.manager === 'applier');
    assert.ok(entry, JSON.stringify(a.json.metadata.managedFields));
    assert.equal(entry.operation, 'Apply');
    assert.deepEqual((entry.fieldsV1 as { 'f:metadata': unknown })['f:metadata'], { 'f:labels': { 'f:team': {} } });
    // An update that changes nothing leaves managedFields, and the stored revision, as they were.
    const again = await call(c, c.admin, 'PATCH', `${CSRS}/${n}?fieldManager=someone-else`, { body: { metadata: { labels: { team: 'blue' } } }, contentType: 'application/merge-patch+json' });
    assert.equal(again.json.metadata.resourceVersion, a.json.metadata.resourceVersion);
    assert.deepEqual(again.json.metadata.managedFields, a.json.metadata.managedFields);
  });

  it('a new Node carries spec {} and status {}; a stored object without them reads with them', async () => {
    const r = await call(c, c.admin, 'POST', '/api/v1/nodes', { body: { apiVersion: 'v1', kind: 'Node', metadata: { name: name('node') } } });
    assert.equal(r.status, 201, r.text);
    assert.deepEqual([r.json.spec, r.json.status], [{}, {}]);
    // As written before the registry filled them in.
    const n = name('old');
    await c.store.put(`/registry/certificatesigningrequests/${n}`, JSON.stringify({ ...csrManifest(n, pem), metadata: { name: n, uid: 'u1', creationTimestamp: '2025-01-01T00:00:00Z' } }));
    assert.deepEqual((await call(c, c.admin, 'GET', `${CSRS}/${n}`)).json.status, {});
  });

  it('a body without kind and apiVersion takes them from the path; one contradicting the path is refused', async () => {
    const n = name('bare');
    const { apiVersion: _a, kind: _k, ...bare } = csrManifest(n, pem);
    const r = await call(c, c.admin, 'POST', CSRS, { body: bare });
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.kind, 'CertificateSigningRequest');
    assert.equal(r.json.apiVersion, 'certificates.k8s.io/v1');
    const noKind = await call(c, c.admin, 'POST', CSRS, { body: { ...bare, apiVersion: 'certificates.k8s.io/v1', metadata: { name: name('bare') } } });
    assert.equal(noKind.status, 201, noKind.text);
    // An approval PUT of the bare object, as a minimal client sends it.
    const approval = await call(c, c.admin, 'PUT', `${CSRS}/${n}/approval`, { body: { metadata: { name: n }, status: { conditions: [{ type: 'Approved', status: 'True' }] } } });
    assert.equal(approval.status, 200, approval.text);
    const refused: Array<[Record<string, unknown>, RegExp]> = [
      [{ ...bare, apiVersion: 'v1' }, /the API version in the data \(v1\) does not match the expected API version \(certificates.k8s.io\/v1\)/],
      [{ ...bare, apiVersion: 'certificates.k8s.io/v1beta1' }, /the API version in the data \(certificates.k8s.io\/v1beta1\) does not match/],
      [{ ...bare, kind: 'Node' }, /the kind in the data \(Node\) does not match the expected kind \(CertificateSigningRequest\)/],
      [{ ...bare, kind: 5 }, /kind: expected string/],
    ];
    for (const [body, message] of refused) {
      const x = await call(c, c.admin, 'POST', CSRS, { body: { ...body, metadata: { name: name('bad') } } });
      assert.equal(x.status, 400, x.text);
      assert.equal(x.json.reason, 'BadRequest');
      assert.match(x.json.message, message);
    }
  });

  it('?pretty=true indents the reply', async () => {
    const r = await call(c, c.admin, 'GET', '/api/v1/nodes?pretty=true');
    assert.match(r.text, /^\{\n {2}"kind": "NodeList",/);
    assert.doesNotMatch((await call(c, c.admin, 'GET', '/api/v1/nodes')).text, /\n/);
  });

  it('a patch field named "__proto__" is an ordinary (unknown) field: it does not smuggle in labels', async () => {
    const n = name('proto');
    await createCsr(n);
    for (const type of ['application/merge-patch+json', 'application/strategic-merge-patch+json']) {
      const r = await call(c, c.admin, 'PATCH', `${CSRS}/${n}`, { body: '{"metadata":{"__proto__":{"labels":{"smuggled":"yes"}}}}', contentType: type });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.metadata.labels, undefined, type);
    }
    const strict = await call(c, c.admin, 'PATCH', `${CSRS}/${n}?fieldValidation=Strict`, { body: '{"metadata":{"__proto__":{"x":1}}}', contentType: 'application/merge-patch+json' });
    assert.equal(strict.status, 400);
    assert.match(strict.json.message, /unknown field "metadata.__proto__"/);
    const kv = await c.store.get(`/registry/certificatesigningrequests/${n}`);
    assert.doesNotMatch(kv!.value.toString(), /smuggled|__proto__/);
  });
});
