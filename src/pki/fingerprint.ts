// Fingerprints for people and for pinning: SHA-256 of a certificate, and kubeadm's CA public key pin.
import { hash } from 'node:crypto';
import { parsePublicKeyInfo } from './keys.js';

/** SHA-256 over DER (a certificate), lower-case hex. */
export function sha256Fingerprint(der: Buffer): string {
  return hash('sha256', der);
}

/** "sha256:<hex>" over a DER SubjectPublicKeyInfo: the form of kubeadm's --discovery-token-ca-cert-hash. */
export function spkiPin(spkiDer: Buffer): string {
  // Parsing first refuses a certificate or other DER passed by mistake, which would give a pin nothing matches.
  parsePublicKeyInfo(spkiDer);
  return `sha256:${sha256Fingerprint(spkiDer)}`;
}
