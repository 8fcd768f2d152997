// EK certificates against a pool's manufacturer CA bundle: the key must be the EK sent, the issuer a CA of the bundle,
// both valid now; an NV index's padding after the DER is ignored. (test/e2e/shielded runs it with swtpm_localca's CA.)
import assert from 'node:assert/strict';
import { X509Certificate, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';
import { checkEkCaBundle, trimDer, verifyEkCertificate } from '../../src/tpm/ek-certificate.js';
import { makeOpensslCa } from '../helpers/openssl-certs.js';

describe('EK certificate policy', () => {
  const ca = makeOpensslCa('manufacturer CA');
  const leaf = ca.issue('ek', { cn: 'tpm', eku: ['clientAuth'] });
  const der = Buffer.from(new X509Certificate(leaf.cert).raw);
  const ekPem = createPublicKey(leaf.key).export({ type: 'spki', format: 'pem' }).toString();
  const now = new Date();

  test('a certificate of the EK from a CA of the bundle is accepted, padding after its DER ignored', () => {
    assert.match(verifyEkCertificate(der, ca.cert, ekPem, now).issuer, /manufacturer CA/);
    const padded = Buffer.concat([der, Buffer.alloc(64, 0xff)]);
    assert.deepEqual(trimDer(padded), der);
    assert.match(verifyEkCertificate(padded, checkEkCaBundle(ca.cert), ekPem, now).issuer, /manufacturer CA/);
  });

  test('another key, another CA, a time outside validity, or no certificate at all are refused', () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    assert.throws(() => verifyEkCertificate(der, ca.cert, other, now), /certifies another key than the endorsement key sent/);
    assert.throws(() => verifyEkCertificate(der, makeOpensslCa('someone else').cert, ekPem, now), /is not issued by a CA of the pool's EK CA bundle/);
    assert.throws(() => verifyEkCertificate(der, ca.cert, ekPem, new Date(now.getTime() + 400 * 86400_000)), /not valid at/);
    assert.throws(() => verifyEkCertificate(Buffer.from('not der'), ca.cert, ekPem, now), /not DER/);
    assert.throws(() => checkEkCaBundle('no certificates here'), /holds no PEM certificate/);
  });
});
