// A TPM's EK certificate against a shielded pool's manufacturer CA bundle: the policy that enrolls a TPM on its first
// attestation, without the operator registering its EK by hand (SPIRE's tpm_devid, GKE's vTPM endorsement).
//
// node:crypto's X509Certificate checks issuer and signature only: EK certificates carry a critical TCG subject
// alternative name (TPM manufacturer, model, version) that general-purpose chain verifiers refuse.
import { X509Certificate, createPublicKey } from 'node:crypto';
import { invalid } from '../util/errors.js';

const MAX_DEPTH = 4;

/** The DER of the certificate at the start of `buf`: an NV index is often larger than the certificate it holds. */
export function trimDer(buf: Buffer): Buffer {
  if (buf.length < 4 || buf[0] !== 0x30) throw invalid('the EK certificate is not DER (no SEQUENCE at its start)');
  const l = buf[1];
  if (l < 0x80) return buf.subarray(0, 2 + l);
  const n = l & 0x7f;
  if (n < 1 || n > 3 || buf.length < 2 + n) throw invalid('the EK certificate has an invalid DER length');
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + buf[2 + i];
  if (buf.length < 2 + n + len) throw invalid('the EK certificate is truncated');
  return buf.subarray(0, 2 + n + len);
}

function splitPem(bundle: string): X509Certificate[] {
  const blocks = bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}

/** Checks a PEM bundle of manufacturer CAs; returns it normalised (certificates only). */
export function checkEkCaBundle(bundle: string): string {
  let certs: X509Certificate[];
  try {
    certs = splitPem(bundle);
  } catch (e) {
    throw invalid(`the EK CA bundle holds a certificate that cannot be read: ${(e as Error).message}`);
  }
  if (!certs.length) throw invalid('the EK CA bundle holds no PEM certificate', "pass the TPM manufacturer's CA certificates (PEM)");
  return certs.map((c) => c.toString().trim()).join('\n') + '\n';
}

/**
 * Verifies that `der` certifies the endorsement key `ekPem` and chains (issuer and signature, within validity at
 * `now`) to a certificate of `bundle`; every certificate of the bundle is a trust anchor. Returns the chain's subjects.
 */
export function verifyEkCertificate(der: Buffer, bundle: string, ekPem: string, now: Date): { issuer: string; chain: string[] } {
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(trimDer(der));
  } catch (e) {
    throw invalid(`the EK certificate cannot be read: ${(e as Error).message}`);
  }
  const ekDer = createPublicKey(ekPem).export({ type: 'spki', format: 'der' });
  if (!leaf.publicKey.export({ type: 'spki', format: 'der' }).equals(ekDer)) throw invalid('the EK certificate certifies another key than the endorsement key sent');
  const anchors = splitPem(bundle);
  const within = (c: X509Certificate) => now >= new Date(c.validFrom) && now <= new Date(c.validTo);
  const chain: string[] = [leaf.subject];
  let cur = leaf;
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    if (!within(cur)) throw invalid(`the EK certificate chain holds "${cur.subject}", which is not valid at ${now.toISOString()}`);
    const issuer = anchors.find((a) => cur.checkIssued(a) && cur.verify(a.publicKey));
    if (!issuer) break;
    if (!within(issuer)) throw invalid(`the manufacturer CA "${issuer.subject}" is not valid at ${now.toISOString()}`);
    return { issuer: issuer.subject.replace(/\n/g, ', '), chain: [...chain, issuer.subject].map((s) => s.replace(/\n/g, ', ')) };
  }
  throw invalid(`the EK certificate (issuer "${leaf.issuer.replace(/\n/g, ', ')}") is not issued by a CA of the pool's EK CA bundle`);
}
