// Bad input: each gets a Status that kubectl prints cleanly, and the store's revision does not move.
import assert from 'node:assert/strict';
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
    const noKind = writeIn(c, 'no-kind.json', { apiVersion: 'certificates.k8s.io/v1', metadata: { name: 'nk' } });
    await refused(['create', '--raw', CSRS, '-f', noKind], /Error from server \(BadRequest\): Object 'Kind' is missing/);
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
