// kubeadm's CA public key pin ("sha256:<hex>" over the CA certificate's DER SubjectPublicKeyInfo): parsing and matching.
import { parseCertificates, spkiPin, type ParsedCertificate } from '../pki/index.js';
import { TrustplaneError, invalid } from '../util/errors.js';

const PIN = /^sha256:([0-9a-fA-F]{64})$/;

/** A user's --ca-cert-hash in its one canonical form, lower-case hex; anything else is refused with the expected form. */
export function parseCaCertHash(text: string): string {
  const m = PIN.exec(text.trim());
  if (!m) {
    throw invalid(
      `--ca-cert-hash "${text}" is not a CA public key hash`,
      'write it as kubeadm does, "sha256:" and 64 hex digits (`trustplane clusters describe CLUSTER` shows it as caCertHash)',
    );
  }
  return `sha256:${m[1].toLowerCase()}`;
}

/** The pin of every certificate in a bundle, in bundle order. */
export function pinsOf(certs: readonly ParsedCertificate[]): string[] {
  return certs.map((c) => spkiPin(c.publicKey));
}

/**
 * The certificates of `bundlePem` whose public key matches one of `pins`. Throws Unauthorized, saying which hash the
 * cluster's CA has, when none does: the server is not the cluster the hash names (or the hash was mistyped).
 */
export function matchCaPin(bundlePem: string, pins: readonly string[]): ParsedCertificate[] {
  let certs: ParsedCertificate[];
  try {
    certs = parseCertificates(bundlePem);
  } catch (e) {
    throw new TrustplaneError('Unauthorized', `the cluster CA bundle the server sent cannot be read: ${(e as Error).message}`, 'check --server: it must be the cluster\'s API server');
  }
  const wanted = new Set(pins.map(parseCaCertHash));
  const have = pinsOf(certs);
  const matching = certs.filter((_, i) => wanted.has(have[i]));
  if (matching.length) return matching;
  const is = [...new Set(have)].join(' or ');
  const given = [...wanted].join(' or ');
  throw new TrustplaneError(
    'Unauthorized',
    `the cluster CA's public key hash is ${is}, not the ${given} you gave; nothing was sent to the server`,
    'check --ca-cert-hash (and --server): copy both from the join command `trustplane node-pools bootstrap-token POOL --cluster CLUSTER` prints',
  );
}
