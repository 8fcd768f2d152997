// Bad input: each gets a Status that kubectl prints cleanly, and the store's revision does not move.
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_MAX_BODY_BYTES } from '../../src/apiserver/index.js';
import { encodeField, PROTOBUF_MAGIC } from '../../src/apiserver/http/protobuf.js';
import { opensslCsr } from '../helpers/openssl.js';
import { call, csrManifest, startTestCluster, writeIn, type TestCluster } from './harness.js';

const CSRS = '/apis/certificates.k8s.io/v1/certificatesigningrequests';

describe('bad input', () => {
  let c: TestCluster;
  let admin: string;
  let pem: string;

  before(async () => {
    c = await startTestCluster();
    admin = c.kubeconfig(c.admin, 'admin');
    pem = opensslCsr(c.dir, 'n1', { subj: '/CN=system:node:n1/O=system:nodes' });
  });
  after(() => c?.stop());

  const revision = async () => (await c.store.getPrefix('/registry/')).revision;

  /** Runs kubectl, expects it to fail with `pattern` on stderr, and the store to be untouched. */
  async function refused(args: string[], pattern: RegExp): Promise<string> {
    const before = await revision();
    const r = await c.kubectl(admin, args);
    assert.notEqual(r.status, 0, `kubectl ${args.join(' ')} succeeded: ${r.stdout}`);
    assert.match(r.stderr, pattern);
    assert.doesNotMatch(r.stderr, /panic|goroutine|unable to decode|Unknown \(/, 'the error is printed cleanly');
    assert.equal(await revision(), before, 'nothing was written');
    return r.stderr;
  }

  it('malformed JSON → 400', async () => {
    const f = writeIn(c, 'bad.json', '{"apiVersion": "certificates.k8s.io/v1", "kind": ');
    await refused(['create', '--raw', CSRS, '-f', f], /^Error from server \(BadRequest\): couldn't get version\/kind; json parse error: /m);
  });

  it('wrong apiVersion or kind → 400', async () => {
    const node = writeIn(c, 'node-as-csr.json', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'x' } });
    await refused(['create', '--raw', CSRS, '-f', node], /Error from server \(BadRequest\): the API version in the data \(v1\) does not match the expected API version \(certificates.k8s.io\/v1\)/);
    const kind = writeIn(c, 'wrong-kind.json', { ...csrManifest('wk', pem), kind: 'Lease' });
    await refused(['create', '--raw', CSRS, '-f', kind], /Error from server \(BadRequest\): the kind in the data \(Lease\) does not match the expected kind \(CertificateSigningRequest\)/);
    const nodeKind = writeIn(c, 'node-kind.json', { ...csrManifest('nk', pem), kind: 'Node' });
    await refused(['create', '--raw', CSRS, '-f', nodeKind], /Error from server \(BadRequest\): the kind in the data \(Node\) does not match the expected kind \(CertificateSigningRequest\)/);
    // Without kind, the path gives it (as kube-apiserver's decoder): what is then wrong is the object itself.
    const noKind = writeIn(c, 'no-kind.json', { apiVersion: 'certificates.k8s.io/v1', metadata: { name: 'nk' } });
    await refused(['create', '--raw', CSRS, '-f', noKind], /The CertificateSigningRequest "nk" is invalid: \n\* spec.request: Required value/);
  });

  it(`a body over the limit (${DEFAULT_MAX_BODY_BYTES} bytes) → 413`, async () => {
    const m = csrManifest('big', pem);
    const big = writeIn(c, 'big.json', { ...m, metadata: { name: 'big', annotations: { filler: 'x'.repeat(DEFAULT_MAX_BODY_BYTES + 1000) } } });
    await refused(['create', '-f', big], /Error from server \(RequestEntityTooLarge\): error when creating ".*big.json": the request body is too large: limit is 3145728 bytes/);
  });

  it('unknown fields: Strict → 400 naming the field; Warn → a warning and the field dropped', async () => {
    const m = csrManifest('unknown', pem, { extraSpec: { bogusField: 1 } });
    const f = writeIn(c, 'unknown.json', m);
    await refused(['create', '-f', f], /Error from server \(BadRequest\): error when creating ".*unknown.json": CertificateSigningRequest in version "v1" cannot be handled as a CertificateSigningRequest: strict decoding error: unknown field "spec.bogusField"/);
    const r = await c.kubectl(admin, ['create', '-f', f, '--validate=warn']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /Warning: unknown field "spec.bogusField"/);
    const kv = await c.store.get('/registry/certificatesigningrequests/unknown');
    assert.ok(kv);
    assert.equal(JSON.parse(kv.value.toString()).spec.bogusField, undefined);
  });

  it('wrong field types → 400', async () => {
    const f = writeIn(c, 'types.json', csrManifest('types', pem, { extraSpec: { expirationSeconds: 'soon' } }));
    await refused(['create', '-f', f], /Error from server \(BadRequest\): .*spec.expirationSeconds: expected integer, got string/);
  });

  it('invalid CSR PEM, a tampered CSR, a too-short lifetime → 422 Invalid', async () => {
    const notPem = { ...csrManifest('not-pem', pem), spec: { ...csrManifest('x', pem).spec, request: Buffer.from('hello').toString('base64') } };
    await refused(['create', '-f', writeIn(c, 'not-pem.json', notPem)], /The CertificateSigningRequest "not-pem" is invalid: spec.request: Invalid value: PEM block type must be CERTIFICATE REQUEST/);

    // Flip one bit inside the signature: the PEM still parses, the signature no longer verifies.
    const der = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
    der[der.length - 5] ^= 0x01;
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE REQUEST-----\n`;
    await refused(['create', '-f', writeIn(c, 'tampered.json', csrManifest('tampered', tampered))], /The CertificateSigningRequest "tampered" is invalid: spec.request: Invalid value: .*(signature|ECDSA)/);

    await refused(['create', '-f', writeIn(c, 'short.json', csrManifest('short', pem, { expirationSeconds: 300 }))], /The CertificateSigningRequest "short" is invalid: spec.expirationSeconds: Invalid value: 300: may not specify a duration less than 600 seconds/);
    await refused(['create', '-f', writeIn(c, 'no-usages.json', csrManifest('no-usages', pem, { usages: [] }))], /spec.usages: Required value/);
    await refused(['create', '-f', writeIn(c, 'bad-name.json', csrManifest('Bad_Name', pem))], /metadata.name: Invalid value: "Bad_Name"/);
  });

  it('dryRun=All writes nothing, for create and delete', async () => {
    const before = await revision();
    const r = await c.kubectl(admin, ['create', '-f', writeIn(c, 'dry.json', csrManifest('dry', pem)), '--dry-run=server']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /dry created \(server dry run\)/);
    assert.equal(await revision(), before);
    assert.equal(await c.store.get('/registry/certificatesigningrequests/dry'), null);
    const del = await c.kubectl(admin, ['delete', 'csr', 'unknown', '--dry-run=server']);
    assert.equal(del.status, 0, del.stderr);
    assert.ok(await c.store.get('/registry/certificatesigningrequests/unknown'));
    assert.equal(await revision(), before);
  });

  it('malformed input is a 4xx Status, never a 500, and writes nothing', async () => {
    const deep = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;
    const deep100k = `{"apiVersion":"certificates.k8s.io/v1","kind":"CertificateSigningRequest","metadata":{"name":"deep"},"spec":${deep(100_000)}}`;
    const lists100k = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    const MP = 'application/merge-patch+json';
    const SMP = 'application/strategic-merge-patch+json';
    const JP = 'application/json-patch+json';
    const APPLY = 'application/apply-patch+yaml';
    const long = 'x'.repeat(3000);
    // [method, path, body, content type, expected status]
    const cases: Array<[string, string, string | undefined, string | undefined, number]> = [
      // Nesting 100,000 deep (was 500 "Maximum call stack size exceeded"), in every body the server decodes.
      ['POST', CSRS, deep100k, undefined, 400],
      ['POST', CSRS, lists100k, undefined, 400],
      ['PUT', `${CSRS}/malformed-target/approval`, deep100k, undefined, 400],
      ['PATCH', `${CSRS}/malformed-target`, `{"metadata":${deep(100_000)}}`, MP, 400],
      ['PATCH', `${CSRS}/malformed-target`, `{"metadata":${deep(100_000)}}`, SMP, 400],
      ['PATCH', `${CSRS}/malformed-target`, `[{"op":"add","path":"/metadata/x","value":${deep(100_000)}}]`, JP, 400],
      ['PATCH', `${CSRS}/malformed-target?fieldManager=m`, deep100k, APPLY, 400],
      ['DELETE', `${CSRS}/malformed-target`, deep(100_000), undefined, 400],
      ['POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', deep(100_000), undefined, 400],
      // Where the schema keeps unknown content (a Node's spec.configSource), the whole depth reached the recursive walks.
      ['POST', '/api/v1/nodes', `{"metadata":{"name":"d"},"spec":{"configSource":${deep(100_000)}}}`, undefined, 400],
      ['PATCH', '/api/v1/nodes/deep-node', `{"spec":{"configSource":${deep(100_000)}}}`, MP, 400],
      ['PATCH', '/api/v1/nodes/deep-node', `{"spec":{"configSource":${deep(100_000)}}}`, SMP, 400],
      ['PATCH', '/api/v1/nodes/deep-node', `{"spec":{"configSource":${deep(5000)}}}`, MP, 400],
      // Just past the bound.
      ['POST', '/api/v1/nodes', `{"metadata":{"name":"d"},"spec":{"configSource":${deep(501)}}}`, undefined, 400],
      // Invalid percent-escapes in the path (was 500 "URI malformed"), names a path cannot hold.
      ['GET', `${CSRS}/%zz`, undefined, undefined, 400],
      ['GET', `${CSRS}/%E0%A4%A`, undefined, undefined, 400],
      ['DELETE', `/api/v1/nodes/%C3`, undefined, undefined, 400],
      ['GET', `${CSRS}/a%2Fb`, undefined, undefined, 400],
      // Bodies that are not objects (a DELETE body of null was a 500).
      ...(['null', '[]', '"x"', '5', 'true'].map((b) => ['DELETE', `${CSRS}/malformed-target`, b, undefined, 400]) as Array<[string, string, string, undefined, number]>),
      ...(['null', '[]', '"x"', '5'].map((b) => ['POST', CSRS, b, undefined, 400]) as Array<[string, string, string, undefined, number]>),
      ['DELETE', `${CSRS}/malformed-target`, '{"preconditions":[]}', undefined, 400],
      ['DELETE', `${CSRS}/malformed-target`, '{"dryRun":"All"}', undefined, 400],
      ['DELETE', `${CSRS}/malformed-target`, '{"kind":"Pod"}', undefined, 400],
      // Patch bodies of the wrong shape.
      ['PATCH', `${CSRS}/malformed-target`, 'null', MP, 400],
      ['PATCH', `${CSRS}/malformed-target`, '{}', JP, 400],
      ['PATCH', `${CSRS}/malformed-target`, '[null]', JP, 400],
      ['PATCH', `${CSRS}/malformed-target`, '[{"op":"add","path":"/metadata/labels/a"}]', JP, 422],
      ['PATCH', `${CSRS}/malformed-target`, '[{"op":"move","from":"/metadata","path":"/metadata/x"}]', JP, 422],
      // JSON patch amplification (the fuzzer's api-patch finding): copies of the whole document into itself double it
      // each time; a copy without "from" copied the whole document; too many operations.
      ['PATCH', `${CSRS}/malformed-target`, JSON.stringify(Array.from({ length: 40 }, (_, i) => ({ op: 'copy', from: '', path: `/c${i}` }))), JP, 422],
      ['PATCH', `${CSRS}/malformed-target`, JSON.stringify(Array.from({ length: 40 }, (_, i) => ({ op: 'copy', from: '/spec', path: `/spec/c${i}` }))), JP, 422],
      ['PATCH', `${CSRS}/malformed-target`, '[{"op":"copy","path":"/metadata/x"}]', JP, 400],
      ['PATCH', `${CSRS}/malformed-target`, '[{"op":"move","path":"/metadata/x"}]', JP, 400],
      ['PATCH', `${CSRS}/malformed-target`, '[{"op":"move","from":"/metadata","path":"/metadata/labels"}]', JP, 422],
      ['PATCH', `${CSRS}/malformed-target`, JSON.stringify(Array.from({ length: 10_001 }, () => ({ op: 'test', path: '/kind', value: 'CertificateSigningRequest' }))), JP, 413],
      ['PATCH', `${CSRS}/malformed-target`, '{"metadata":"x"}', MP, 400],
      ['PATCH', `${CSRS}/malformed-target`, '{"metadata":{"$patch":"sideways"}}', SMP, 400],
      ['PATCH', `${CSRS}/malformed-target`, '{"$retainKeys":[1,{}]}', SMP, 400],
      ['PATCH', `${CSRS}/malformed-target?fieldManager=m`, '{"apiVersion":"certificates.k8s.io/v1","kind":"CertificateSigningRequest","metadata":"x"}', APPLY, 400],
      ['PATCH', `${CSRS}/malformed-target?fieldManager=m`, '{"apiVersion":"certificates.k8s.io/v1","kind":"CertificateSigningRequest","metadata":{"resourceVersion":5}}', APPLY, 400],
      // Selectors and numbers.
      ['GET', `${CSRS}?labelSelector=${encodeURIComponent('a in (b')}`, undefined, undefined, 400],
      ['GET', `${CSRS}?labelSelector=${encodeURIComponent('(((((')}`, undefined, undefined, 400],
      ['GET', `${CSRS}?labelSelector=${encodeURIComponent(`${long}=${long}`)}`, undefined, undefined, 200],
      ['GET', `${CSRS}?fieldSelector=metadata.name`, undefined, undefined, 400],
      ['GET', `${CSRS}?fieldSelector=spec.nodeName%3Dx`, undefined, undefined, 400],
      ['GET', `${CSRS}?limit=1e400`, undefined, undefined, 400],
      ['GET', `${CSRS}?limit=${'9'.repeat(400)}`, undefined, undefined, 400],
      ['GET', `${CSRS}?watch=1&timeoutSeconds=-${'9'.repeat(30)}`, undefined, undefined, 400],
      ['GET', `${CSRS}?resourceVersion=${'9'.repeat(30)}`, undefined, undefined, 400],
      ['GET', `${CSRS}?includeObject=Everything`, undefined, undefined, 200],
      ['POST', CSRS, JSON.stringify({ ...csrManifest('huge', pem), spec: { ...csrManifest('huge', pem).spec, expirationSeconds: 1e308 } }).replace('1e+308', '1e400'), undefined, 400],
      ['POST', CSRS, JSON.stringify({ ...csrManifest('huge', pem), spec: { ...csrManifest('huge', pem).spec, expirationSeconds: 2 ** 62 } }), undefined, 400],
      ['POST', '/api/v1/nodes', '{"metadata":{"name":"n","generation":123456789012345678901234567890}}', undefined, 400],
      ['GET', `${CSRS}?timeout=1y`, undefined, undefined, 400],
    ];
    // This test's own objects: a CSR and a Node for the requests to aim at.
    assert.equal((await call(c, c.admin, 'POST', CSRS, { body: csrManifest('malformed-target', pem) })).status, 201);
    assert.equal((await call(c, c.admin, 'POST', '/api/v1/nodes', { body: { metadata: { name: 'deep-node' } } })).status, 201);
    // Within the bound, deep content is kept (and read back) whole.
    const within = await call(c, c.admin, 'PATCH', '/api/v1/nodes/deep-node', { body: `{"spec":{"configSource":${deep(400)}}}`, contentType: MP });
    assert.equal(within.status, 200, within.text.slice(0, 300));
    assert.equal((await call(c, c.admin, 'GET', '/api/v1/nodes/deep-node')).text.split('{"a":').length - 1, 400);
    const before = await revision();
    for (const [method, path, body, contentType, want] of cases) {
      const r = await call(c, c.admin, method, path, body === undefined ? {} : { body, contentType });
      const what = `${method} ${path.slice(0, 80)} ${(body ?? '').slice(0, 60)}`;
      assert.equal(r.status, want, `${what}: ${r.text.slice(0, 300)}`);
      if (want >= 400) {
        assert.equal(r.json?.kind, 'Status', what);
        assert.ok(r.json.message.length < 2000, `${what}: a bounded message`);
      }
    }
    assert.equal(await revision(), before, 'nothing was written');
    // The absolute form of a request target, and a path starting "//", are read as paths, never as another host.
    for (const target of [`${c.api.url}/api/v1/nodes`, '//api/v1/nodes']) {
      const r = await rawGet(target);
      assert.ok(r.status === 200 || r.status === 404, `${target}: ${r.status}`);
    }
  });

  /** A GET with the request target exactly as given (node:https would otherwise normalise it). */
  function rawGet(target: string): Promise<{ status: number }> {
    const url = new URL(c.api.url);
    return new Promise((resolve, reject) => {
      const req = httpsRequest({ host: url.hostname, port: url.port, path: target, method: 'GET', ca: c.ca.cert, cert: c.admin.cert, key: c.admin.key, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0 }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('garbage protobuf → 400, unknown media type → 415, unknown paths → 404, wrong methods → 405', async () => {
    const before = await revision();
    const junk = Buffer.concat([PROTOBUF_MAGIC, encodeField(2, Buffer.from([0xff, 0xff]))]);
    const pb = await call(c, c.admin, 'POST', CSRS, { body: junk, contentType: 'application/vnd.kubernetes.protobuf' });
    assert.equal(pb.status, 400);
    assert.equal(pb.json.kind, 'Status');
    const truncated = Buffer.concat([PROTOBUF_MAGIC, Buffer.from([0x12, 0x40, 0x01])]);
    assert.equal((await call(c, c.admin, 'PUT', `${CSRS}/unknown/approval`, { body: truncated, contentType: 'application/vnd.kubernetes.protobuf' })).status, 400);
    const xml = await call(c, c.admin, 'POST', CSRS, { body: '<csr/>', contentType: 'application/xml' });
    assert.equal(xml.status, 415);
    assert.equal(xml.json.reason, 'UnsupportedMediaType');
    const patchType = await call(c, c.admin, 'PATCH', `${CSRS}/unknown`, { body: '{}', contentType: 'application/json' });
    assert.equal(patchType.status, 415);
    assert.equal((await call(c, c.admin, 'GET', '/apis/example.com/v1/things')).status, 404);
    assert.equal((await call(c, c.admin, 'DELETE', CSRS)).status, 405);
    assert.equal(await revision(), before);
    const k = await c.kubectl(admin, ['get', '--raw', '/apis/example.com/v1/things']);
    assert.match(k.stderr, /Error from server \(NotFound\): the server could not find the requested resource/);
  });
});
