// Cross-checks against OpenSSL and node's X509Certificate: their CSRs parse here, our certificates verify there.
import assert from 'node:assert/strict';
import { X509Certificate, createPublicKey } from 'node:crypto';
import { test } from 'node:test';
import {
  OID,
  buildCertificate,
  crossSign,
  formatName,
  issuerOf,
  keyIdOf,
  parseCertificate,
  parseCsr,
  pemEncode,
  spkiPin,
  verifyChain,
} from '../../src/pki/index.js';
import type { CertificateTemplate, KeyAlgorithm, ParsedCertificate } from '../../src/pki/types.js';
import { ALGORITHMS, DAY, algName, makeCa, openssl, opensslStatus, pkcs8Pem, refuses, tempDir, testKey, testSigner, writeFile } from './helpers.js';

const dir = tempDir();
const NOW = new Date();
const around = { notBefore: new Date(NOW.getTime() - DAY), notAfter: new Date(NOW.getTime() + 30 * DAY) };

function keyFile(a: KeyAlgorithm, i = 1): string {
  return writeFile(dir, `${algName(a)}-${i}.key`, pkcs8Pem(testKey(a, i)));
}

function certFile(name: string, c: ParsedCertificate | Buffer): string {
  return writeFile(dir, name, pemEncode('CERTIFICATE', Buffer.isBuffer(c) ? c : c.der));
}

for (const alg of ALGORITHMS) {
  test(`openssl req CSR (${algName(alg)}) with SAN and other extensions parses and verifies`, () => {
    const key = keyFile(alg);
    const out = `${algName(alg)}.csr`;
    openssl(
      [
        'req', '-new', '-key', key, '-subj', '/C=DE/O=system:nodes/OU=Ops Team/CN=system:node:w1', '-out', out,
        '-addext', 'subjectAltName=DNS:w1,DNS:w1.cluster.local,IP:10.0.0.1,IP:fd00::1,URI:spiffe://td/ns/x,email:ops@example.com',
        '-addext', 'keyUsage=critical,digitalSignature,keyEncipherment',
        '-addext', 'extendedKeyUsage=clientAuth,serverAuth',
        '-addext', 'basicConstraints=critical,CA:FALSE',
        '-addext', '1.2.3.4.5=ASN1:UTF8String:custom',
      ],
      dir,
    );
    const pem = openssl(['req', '-in', out], dir);
    const csr = parseCsr(pem);
    assert.deepEqual(csr.subject, [
      { type: 'C', value: 'DE' },
      { type: 'O', value: 'system:nodes' },
      { type: 'OU', value: 'Ops Team' },
      { type: 'CN', value: 'system:node:w1' },
    ]);
    assert.deepEqual(csr.keyAlgorithm, alg);
    assert.deepEqual(csr.publicKey, testSigner(alg, 1).publicKey);
    assert.deepEqual(csr.sans, { dns: ['w1', 'w1.cluster.local'], ip: ['10.0.0.1', 'fd00::1'], uri: ['spiffe://td/ns/x'], email: ['ops@example.com'] });
    assert.deepEqual(csr.requestedBasicConstraints, { isCA: false });
    assert.deepEqual(csr.requestedKeyUsage, ['digitalSignature', 'keyEncipherment']);
    assert.deepEqual(csr.requestedExtKeyUsage, ['clientAuth', 'serverAuth']);
    assert.deepEqual(
      csr.extensions.map((e) => [e.oid, e.critical]),
      [
        [OID.subjectAltName, false],
        [OID.keyUsage, true],
        [OID.extKeyUsage, false],
        [OID.basicConstraints, true],
        ['1.2.3.4.5', false],
      ],
    );
    assert.deepEqual(csr.extensions[4].value, Buffer.from([0x0c, 0x06, ...Buffer.from('custom')]));
    // OpenSSL itself agrees the request is self-consistent.
    const v = opensslStatus(['req', '-in', out, '-noout', '-verify'], dir);
    assert.equal(v.status, 0);
    assert.match(v.out, /verify OK/);
  });
}

test('openssl CSRs with a challengePassword attribute, and without extensions, parse', () => {
  const key = keyFile({ kind: 'ec', curve: 'P-256' });
  const cnf = writeFile(dir, 'attrs.cnf', ['[req]', 'prompt=no', 'distinguished_name=dn', 'attributes=attrs', '[dn]', 'CN=attr test', '[attrs]', 'challengePassword=sesame', ''].join('\n'));
  openssl(['req', '-new', '-key', key, '-config', cnf, '-addext', 'subjectAltName=DNS:x', '-out', 'attrs.csr'], dir);
  const csr = parseCsr(openssl(['req', '-in', 'attrs.csr'], dir));
  assert.deepEqual(csr.subject, [{ type: 'CN', value: 'attr test' }]);
  assert.deepEqual(csr.sans.dns, ['x']);
  openssl(['req', '-new', '-key', key, '-subj', '/CN=plain', '-out', 'plain.csr'], dir);
  const plain = parseCsr(openssl(['req', '-in', 'plain.csr'], dir));
  assert.deepEqual(plain.extensions, []);
  assert.deepEqual(plain.sans, { dns: [], ip: [], uri: [], email: [] });
});

test('openssl CSRs with RSA-1024 or SHA-1 are refused, naming why', () => {
  openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024', '-out', 'rsa1024.key'], dir);
  openssl(['req', '-new', '-key', 'rsa1024.key', '-subj', '/CN=weak', '-out', 'weak.csr'], dir);
  refuses(() => parseCsr(openssl(['req', '-in', 'weak.csr'], dir)), /certificate request: subjectPKInfo: RSA key of 1024 bits is refused/);
  openssl(['req', '-new', '-key', keyFile({ kind: 'ec', curve: 'P-256' }), '-sha1', '-subj', '/CN=sha1', '-out', 'sha1.csr'], dir);
  refuses(() => parseCsr(openssl(['req', '-in', 'sha1.csr'], dir)), /signatureAlgorithm: signature algorithm ecdsa-with-SHA1 .* SHA-1 signatures are refused/);
});

/** The extension names in `openssl x509 -text`, in order, with " critical" where marked. */
function opensslExtensions(certPath: string): string[] {
  const text = openssl(['x509', '-in', certPath, '-noout', '-text'], dir);
  const section = text.slice(text.indexOf('X509v3 extensions:'), text.indexOf('Signature Algorithm', text.indexOf('X509v3 extensions:')));
  return [...section.matchAll(/^ {12}(\S[^:\n]*):( critical)?\s*$/gm)].map((m) => m[1] + (m[2] ?? ''));
}

for (const alg of ALGORITHMS) {
  test(`certificates from a ${algName(alg)} CA pass openssl verify -x509_strict for their purpose only`, async () => {
    const ca = await makeCa([{ type: 'O', value: 'trustplane' }, { type: 'CN', value: `${algName(alg)} CA` }], testSigner(alg, 0), around);
    const root = certFile(`${algName(alg)}-root.pem`, ca.cert);
    const subjectKey = testSigner({ kind: 'ec', curve: 'P-256' }, 1).publicKey;
    const client = await ca.issue({ ...around, subject: [{ type: 'CN', value: 'client' }], publicKey: subjectKey, isCA: false, keyUsage: ['digitalSignature'], extKeyUsage: ['clientAuth'] });
    const server = await ca.issue({ ...around, subject: [{ type: 'CN', value: 'server' }], publicKey: subjectKey, isCA: false, keyUsage: ['digitalSignature', 'keyEncipherment'], extKeyUsage: ['serverAuth'], sans: { dns: ['server.local'], ip: ['127.0.0.1'] } });
    const clientPem = certFile(`${algName(alg)}-client.pem`, client);
    const serverPem = certFile(`${algName(alg)}-server.pem`, server);
    assert.match(openssl(['verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', root, clientPem], dir), /: OK/);
    assert.match(openssl(['verify', '-x509_strict', '-purpose', 'sslserver', '-CAfile', root, serverPem], dir), /: OK/);
    const wrong = opensslStatus(['verify', '-x509_strict', '-purpose', 'sslserver', '-CAfile', root, clientPem], dir);
    assert.notEqual(wrong.status, 0);
    assert.match(wrong.out, /unsuitable certificate purpose/);
    assert.notEqual(opensslStatus(['verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', root, serverPem], dir).status, 0);
    // The CA certificate itself is a valid strict self-signed root.
    assert.match(openssl(['verify', '-x509_strict', '-CAfile', root, root], dir), /: OK/);

    // node's X509Certificate agrees on signature, issuance and fields.
    const x = new X509Certificate(server.der);
    const xca = new X509Certificate(ca.cert.der);
    assert.equal(x.verify(xca.publicKey), true);
    assert.equal(x.checkIssued(xca), true);
    assert.equal(xca.ca, true);
    assert.equal(x.ca, false);
    assert.equal(x.verify(createPublicKey({ key: subjectKey, format: 'der', type: 'spki' })), false);
    assert.equal(x.serialNumber.toLowerCase().replace(/^0+/, ''), server.serialHex.replace(/^0+/, ''));
    assert.equal(x.fingerprint256.replace(/:/g, '').toLowerCase(), server.sha256);
    assert.equal(x.subjectAltName, 'DNS:server.local, IP Address:127.0.0.1');
    assert.deepEqual(x.keyUsage, ['1.3.6.1.5.5.7.3.1']);
    assert.equal(new Date(x.validTo).getTime(), server.notAfter.getTime());
  });
}

test('openssl x509 -text shows exactly the extensions the template named', async () => {
  const ca = await makeCa([{ type: 'CN', value: 'ext CA' }], testSigner({ kind: 'ec', curve: 'P-256' }), { ...around, pathLen: 1 });
  const publicKey = testSigner({ kind: 'ec', curve: 'P-384' }, 1).publicKey;
  const base = { ...around, subject: [{ type: 'CN', value: 'x' }], publicKey, isCA: false, keyUsage: ['digitalSignature'] } satisfies Omit<CertificateTemplate, 'notBefore' | 'notAfter'> & typeof around;
  const minimal = await ca.issue(base);
  assert.deepEqual(opensslExtensions(certFile('min.pem', minimal)), [
    'X509v3 Basic Constraints critical',
    'X509v3 Key Usage critical',
    'X509v3 Subject Key Identifier',
    'X509v3 Authority Key Identifier',
  ]);
  const full = await ca.issue({ ...base, extKeyUsage: ['clientAuth'], sans: { dns: ['a'] } });
  assert.deepEqual(opensslExtensions(certFile('full.pem', full)), [
    'X509v3 Basic Constraints critical',
    'X509v3 Key Usage critical',
    'X509v3 Extended Key Usage',
    'X509v3 Subject Alternative Name',
    'X509v3 Subject Key Identifier',
    'X509v3 Authority Key Identifier',
  ]);
  const empty = await ca.issue({ ...base, subject: [], sans: { uri: ['spiffe://td/x'] } });
  assert.deepEqual(opensslExtensions(certFile('empty.pem', empty))[2], 'X509v3 Subject Alternative Name critical');
  const caText = openssl(['x509', '-in', certFile('ca.pem', ca.cert), '-noout', '-text'], dir);
  assert.match(caText, /CA:TRUE, pathlen:1/);
  assert.match(caText, /Digital Signature, Certificate Sign, CRL Sign/);
  assert.equal(opensslExtensions(certFile('ca.pem', ca.cert)).length, 4);
});

test('SKI matches the one OpenSSL computes (RFC 5280 method 1); spkiPin matches the kubeadm openssl pipeline', async () => {
  for (const alg of [{ kind: 'ec', curve: 'P-256' }, { kind: 'rsa', bits: 2048 }, { kind: 'ed25519' }] as KeyAlgorithm[]) {
    const key = keyFile(alg, 0);
    const out = `ossl-${algName(alg)}.pem`;
    openssl(['req', '-x509', '-new', '-key', key, '-subj', '/CN=ossl', '-days', '2', '-out', out], dir);
    const osslCert = parseCertificate(openssl(['x509', '-in', out], dir));
    assert.ok(osslCert.subjectKeyId);
    assert.deepEqual(osslCert.subjectKeyId, keyIdOf(testSigner(alg, 0).publicKey));
    const ours = await makeCa([{ type: 'CN', value: 'ours' }], testSigner(alg, 0));
    assert.deepEqual(ours.cert.subjectKeyId, osslCert.subjectKeyId);
    // kubeadm: openssl x509 -pubkey | openssl pkey -pubin -outform der | openssl dgst -sha256 -hex
    const pub = openssl(['x509', '-in', out, '-noout', '-pubkey'], dir);
    const der = writeFile(dir, `pub-${algName(alg)}.der`, Buffer.alloc(0));
    openssl(['pkey', '-pubin', '-outform', 'der', '-out', der], dir, pub);
    const hex = openssl(['dgst', '-sha256', '-hex', der], dir).trim().split('= ')[1];
    assert.equal(spkiPin(osslCert.publicKey), `sha256:${hex}`);
  }
});

test('OpenSSL-made CA and leaf parse, chain, and show the same subject', () => {
  const key = keyFile({ kind: 'ec', curve: 'P-256' }, 0);
  openssl(['req', '-x509', '-new', '-key', key, '-subj', '/C=US/O=Acme Corp/CN=Acme Root', '-days', '10', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', 'acme-ca.pem'], dir);
  openssl(['req', '-new', '-key', keyFile({ kind: 'rsa', bits: 2048 }, 1), '-subj', '/CN=acme leaf', '-out', 'acme.csr'], dir);
  writeFile(dir, 'acme.ext', 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:acme.test\n');
  openssl(['x509', '-req', '-in', 'acme.csr', '-CA', 'acme-ca.pem', '-CAkey', key, '-CAcreateserial', '-days', '5', '-extfile', 'acme.ext', '-out', 'acme-leaf.pem'], dir);
  const ca = parseCertificate(openssl(['x509', '-in', 'acme-ca.pem'], dir));
  const leaf = parseCertificate(openssl(['x509', '-in', 'acme-leaf.pem'], dir));
  const osslSubject = openssl(['x509', '-in', 'acme-ca.pem', '-noout', '-subject'], dir).trim().replace(/^subject=/, '').replace(/ = /g, '=');
  assert.equal(formatName(ca.subject), osslSubject);
  assert.equal(formatName(ca.subject), 'C=US, O=Acme Corp, CN=Acme Root');
  assert.deepEqual(leaf.sans.dns, ['acme.test']);
  assert.deepEqual(leaf.extKeyUsage, ['serverAuth']);
  assert.equal(verifyChain(leaf, [], [ca], { at: new Date(), purpose: 'serverAuth' }).length, 2);
  refuses(() => verifyChain(leaf, [], [ca], { at: new Date(), purpose: 'clientAuth' }), /not clientAuth/);
});

test('cross-signed CA generations verify with openssl: old root + cross cert as untrusted, new leaf', async () => {
  const oldCa = await makeCa([{ type: 'O', value: 'tp' }, { type: 'CN', value: 'cluster CA g1' }], testSigner({ kind: 'ec', curve: 'P-256' }, 0), around);
  const newCa = await makeCa([{ type: 'O', value: 'tp' }, { type: 'CN', value: 'cluster CA g2' }], testSigner({ kind: 'ec', curve: 'P-384' }, 0), around);
  const cross = parseCertificate(await crossSign(newCa.cert, issuerOf(oldCa.cert, oldCa.signer)));
  const leafDer = await buildCertificate(
    { ...around, subject: [{ type: 'CN', value: 'system:node:w9' }], publicKey: testSigner({ kind: 'ec', curve: 'P-256' }, 1).publicKey, isCA: false, keyUsage: ['digitalSignature'], extKeyUsage: ['clientAuth'] },
    issuerOf(newCa.cert, newCa.signer),
  );
  const leaf = parseCertificate(leafDer);
  const [oldPem, newPem, crossPem, leafPem] = [certFile('g1.pem', oldCa.cert), certFile('g2.pem', newCa.cert), certFile('g2-cross.pem', cross), certFile('g2-leaf.pem', leaf)];
  assert.match(openssl(['verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', oldPem, '-untrusted', crossPem, leafPem], dir), /: OK/);
  assert.match(openssl(['verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', newPem, leafPem], dir), /: OK/);
  // Without the cross certificate an old-bundle peer cannot reach its root.
  assert.notEqual(opensslStatus(['verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', oldPem, leafPem], dir).status, 0);
  // And our own verifier takes the same two paths.
  assert.deepEqual(verifyChain(leaf, [cross], [oldCa.cert], { at: NOW, purpose: 'clientAuth' }).map((c) => c.sha256), [leaf.sha256, cross.sha256, oldCa.cert.sha256]);
  assert.deepEqual(verifyChain(leaf, [cross], [newCa.cert], { at: NOW }).map((c) => c.sha256), [leaf.sha256, newCa.cert.sha256]);
  assert.equal(new X509Certificate(cross.der).verify(new X509Certificate(oldCa.cert.der).publicKey), true);
  assert.equal(new X509Certificate(leaf.der).checkIssued(new X509Certificate(cross.der)), true);
});
