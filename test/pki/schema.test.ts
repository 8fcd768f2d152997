// A corpus of generated certificates and CSRs (every algorithm, varied names, SANs, dates) read the same way by us and by @peculiar.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bytesToIp } from '../../src/pki/extensions.js';
import { OID, buildCertificate, buildCsr, issuerOf, parseCertificate, parseCsr } from '../../src/pki/index.js';
import type { CertificateTemplate, ExtKeyUsage, KeyUsage, Name, ParsedCertificate, SubjectAltNames } from '../../src/pki/types.js';
import { ALGORITHMS, algName, makeCa, prng, testSigner } from './helpers.js';
import { type ReferenceExtensions, canonicalIp, dotted, referenceCertificate, referenceCsr } from './schema.js';

const PER_ALGORITHM = 40;
const rnd = prng(0x5eed);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));

const ALPHABETS = ['abcdefghijklmnopqrstuvwxyz', 'ABCXYZ0123456789 -._:', 'äöüßéèñçøå', 'д日本語中文한국어', '😀🔐✓', "'()+,/=?"];
function text(min = 1, max = 24): string {
  let s = '';
  const n = int(min, max);
  while ([...s].length < n) {
    const alphabet = [...pick(ALPHABETS)];
    s += pick(alphabet);
  }
  return s.trim() || 'x';
}

function randomName(): Name {
  const name: Name = [];
  for (let i = int(0, 6); i > 0; i--) {
    const type = pick(['CN', 'O', 'OU', 'C', 'L', 'ST', 'serialNumber', '1.3.6.1.4.1.99999.1']);
    if (type === 'C') name.push({ type, value: pick(['DE', 'US', 'FR', 'JP']) });
    else if (type === 'serialNumber') name.push({ type, value: String(int(1, 1e9)) });
    else name.push({ type, value: text() });
  }
  return name;
}

function randomSans(): Partial<SubjectAltNames> {
  const label = () => Array.from({ length: int(1, 12) }, () => pick([...'abcdefghijklmnopqrstuvwxyz0123456789-'])).join('');
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => (rnd() < 0.3 ? 0 : int(0, 255))));
  return {
    dns: Array.from({ length: int(0, 3) }, () => Array.from({ length: int(1, 4) }, label).join('.')),
    ip: Array.from({ length: int(0, 3) }, () => bytesToIp(bytes(pick([4, 16])))),
    uri: Array.from({ length: int(0, 2) }, () => `spiffe://${label()}/ns/${label()}`),
    email: Array.from({ length: int(0, 2) }, () => `${label()}@${label()}.test`),
  };
}

const USAGES: KeyUsage[] = ['digitalSignature', 'nonRepudiation', 'keyEncipherment', 'dataEncipherment', 'keyAgreement', 'cRLSign'];
const EKUS: ExtKeyUsage[] = ['serverAuth', 'clientAuth', 'codeSigning', 'emailProtection', 'timeStamping', 'OCSPSigning'];

function randomDate(): Date {
  // Across the UTCTime / GeneralizedTime boundary at 2050.
  return new Date(Date.UTC(int(1951, 2120), int(0, 11), int(1, 28), int(0, 23), int(0, 59), int(0, 59)));
}

function checkExtensions(ours: { extensions: ParsedCertificate['extensions']; sans: SubjectAltNames }, ref: ReferenceExtensions, what: string): void {
  assert.deepEqual(ours.extensions, ref.extensions, `${what}: extensions`);
  const sans = ref.sans ?? { dns: [], ip: [], uri: [], email: [] };
  assert.deepEqual({ ...ours.sans, ip: ours.sans.ip.map(canonicalIp) }, sans, `${what}: SANs`);
}

test(`corpus: ${PER_ALGORITHM * ALGORITHMS.length} certificates and as many CSRs read the same by both parsers`, async () => {
  let certs = 0;
  let csrs = 0;
  for (const alg of ALGORITHMS) {
    const ca = await makeCa(randomName().concat([{ type: 'CN', value: `${algName(alg)} corpus CA` }]), testSigner(alg, 0));
    const issuer = issuerOf(ca.cert, ca.signer);
    for (let i = 0; i < PER_ALGORITHM; i++) {
      const subjectSigner = testSigner(pick(ALGORITHMS), 1);
      const subject = randomName();
      const sans = randomSans();
      const hasSans = Object.values(sans).some((l) => l.length > 0);

      // CSR
      const csrDer = await buildCsr({ subject, sans, signer: subjectSigner });
      const csr = parseCsr(csrDer);
      const refCsr = referenceCsr(csrDer);
      const what = `${algName(alg)} CSR ${i}`;
      assert.deepEqual(refCsr.reencoded, csrDer, `${what}: re-encoding`);
      assert.deepEqual(dotted(csr.subject), refCsr.subject, `${what}: subject`);
      assert.deepEqual(dotted(csr.subject), dotted(subject), `${what}: subject as built`);
      assert.deepEqual(csr.publicKey, refCsr.publicKey, `${what}: public key`);
      assert.equal(csr.signatureAlgorithmOid, refCsr.signatureAlgorithmOid);
      checkExtensions(csr, refCsr, what);
      csrs++;

      // Certificate
      const isCA = rnd() < 0.3;
      const keyUsage = USAGES.filter(() => rnd() < 0.4);
      if (isCA) keyUsage.push('keyCertSign');
      if (keyUsage.length === 0) keyUsage.push('digitalSignature');
      const notBefore = randomDate();
      const template: CertificateTemplate = {
        serial: rnd() < 0.5 ? Buffer.from(Array.from({ length: int(1, 20) }, () => int(0, 255))) : undefined,
        subject: subject.length || hasSans ? subject : [{ type: 'CN', value: 'fallback' }],
        notBefore,
        notAfter: new Date(notBefore.getTime() + int(1, 40 * 365) * 86400_000),
        publicKey: subjectSigner.publicKey,
        isCA,
        pathLen: isCA && rnd() < 0.5 ? int(0, 300) : undefined,
        keyUsage,
        extKeyUsage: rnd() < 0.6 ? EKUS.filter(() => rnd() < 0.4).concat(['clientAuth']).filter((u, k, a) => a.indexOf(u) === k) : undefined,
        sans,
      };
      if (template.serial && template.serial.every((b) => b === 0)) template.serial[0] = 1;
      const der = await buildCertificate(template, issuer);
      const cert = parseCertificate(der);
      const ref = referenceCertificate(der);
      const cw = `${algName(alg)} certificate ${i}`;
      assert.deepEqual(ref.reencoded, der, `${cw}: re-encoding`);
      assert.equal(cert.version, ref.version);
      assert.deepEqual(cert.serial, ref.serial, `${cw}: serial`);
      assert.equal(cert.signatureAlgorithmOid, ref.signatureAlgorithmOid);
      assert.deepEqual(dotted(cert.issuer), ref.issuer, `${cw}: issuer`);
      assert.deepEqual(dotted(cert.subject), ref.subject, `${cw}: subject`);
      assert.equal(cert.notBefore.getTime(), ref.notBefore.getTime(), `${cw}: notBefore`);
      assert.equal(cert.notAfter.getTime(), ref.notAfter.getTime(), `${cw}: notAfter`);
      assert.equal(cert.notBefore.getTime(), Math.floor(template.notBefore.getTime() / 1000) * 1000);
      assert.deepEqual(cert.publicKey, ref.publicKey);
      assert.deepEqual(cert.signature, ref.signature);
      checkExtensions(cert, ref, cw);
      assert.equal(cert.isCA, ref.isCA ?? false);
      assert.equal(cert.pathLen, ref.pathLen);
      assert.deepEqual([...cert.keyUsage].sort(), [...(ref.keyUsage ?? [])].sort(), `${cw}: key usage`);
      assert.deepEqual(cert.extKeyUsageOids, ref.extKeyUsageOids ?? []);
      assert.deepEqual(cert.subjectKeyId, ref.subjectKeyId);
      assert.deepEqual(cert.authorityKeyId, ref.authorityKeyId);
      assert.deepEqual(cert.authorityKeyId, ca.cert.subjectKeyId);
      // Only the extensions the template named.
      const expected = [OID.basicConstraints, OID.keyUsage, ...(template.extKeyUsage ? [OID.extKeyUsage] : []), ...(hasSans ? [OID.subjectAltName] : []), OID.subjectKeyIdentifier, OID.authorityKeyIdentifier];
      assert.deepEqual(cert.extensions.map((e) => e.oid), expected, `${cw}: extension list`);
      certs++;
    }
  }
  assert.equal(certs, PER_ALGORITHM * ALGORITHMS.length);
  assert.equal(csrs, certs);
});
