// The CSR signer's decisions as pure functions: what to do with a CSR, what to ask the CA, and what a CA error means.
import type { ParsedCertificate } from '../../pki/index.js';
import {
  SIGNER_APISERVER_CLIENT,
  SIGNER_KUBELET_CLIENT,
  SIGNER_KUBELET_SERVING,
  isApproved,
  isDenied,
  isFailed,
  isIssued,
  type CertificateSigningRequest,
} from '../../apiserver/index.js';
import type { IssuedCertificate, SignInput } from '../../ca/api.js';
import { TrustplaneError, type Reason } from '../../util/errors.js';

/** The narrow view of the CA service the signer needs: one cluster's signing. The host binds a CaClient to its cluster. */
export interface CsrSigningBackend {
  sign(input: SignInput): Promise<IssuedCertificate>;
  /** The cluster root CA generation that issued a certificate (by its authority key id); 0 when unknown. */
  generationOf?(leaf: ParsedCertificate): number;
}

/** The signerNames this signer hands to the CA service; CSRs for any other signer are left for someone else. */
export const CA_SIGNERS: readonly string[] = [SIGNER_KUBELET_CLIENT, SIGNER_KUBELET_SERVING, SIGNER_APISERVER_CLIENT];

/** Kubernetes' reason for a signer's refusal, shown by `kubectl get csr` as Failed. */
export const FAILED_REASON = 'SignerValidationFailure';

export type SigningAction =
  /** Approved and nothing stops it: ask the CA. */
  | { action: 'sign' }
  /** Issued a kubelet client certificate: make sure the node's credential record holds it. */
  | { action: 'record' }
  /** Approved for a signer nobody in this cluster serves: it would wait forever in silence, so say so on the CSR. */
  | { action: 'note'; message: string }
  | { action: 'skip'; why: string };

/** Annotation on an approved CSR that no signer of this cluster will issue: why it waits. */
export const SIGNING_NOTE_ANNOTATION = 'trustplane.io/signing-note';

/** Why an approved CSR for `signer` waits: no signer of this cluster serves that name. */
export function unservedSignerNote(signer: string): string {
  const named = signer ? `signer ${JSON.stringify(signer)}` : 'an empty signer name';
  return (
    `no signer in this cluster serves ${named} (it serves ${CA_SIGNERS.join(', ')}); the request stays approved without a certificate ` +
    'unless an external signer issues it, and the CSR cleaner deletes it 24 hours after creation; create a new request for one of those signers'
  );
}

export function signingAction(csr: Pick<CertificateSigningRequest, 'spec' | 'status' | 'metadata'>): SigningAction {
  const c = csr as CertificateSigningRequest;
  const signer = c.spec?.signerName;
  if (!CA_SIGNERS.includes(signer)) {
    if (isApproved(c) && !isDenied(c) && !isFailed(c) && !isIssued(c)) {
      const message = unservedSignerNote(signer ?? '');
      if (c.metadata?.annotations?.[SIGNING_NOTE_ANNOTATION] !== message) return { action: 'note', message };
    }
    return { action: 'skip', why: `signer ${JSON.stringify(signer ?? '')} is not handled here` };
  }
  if (isIssued(c)) return signer === SIGNER_KUBELET_CLIENT ? { action: 'record' } : { action: 'skip', why: 'already issued' };
  if (isDenied(c)) return { action: 'skip', why: 'denied' };
  if (isFailed(c)) return { action: 'skip', why: 'failed' };
  if (!isApproved(c)) return { action: 'skip', why: 'not approved' };
  return { action: 'sign' };
}

/** What the CA is asked for a CSR: its PEM, signer and lifetime, on behalf of the user who created it. */
export function signInputOf(csr: Pick<CertificateSigningRequest, 'spec'>): SignInput & { csr: string } {
  const s = csr.spec;
  return {
    signer: s.signerName,
    csr: Buffer.from(s.request, 'base64').toString('utf8'),
    ...(s.expirationSeconds !== undefined && s.expirationSeconds !== null ? { expirationSeconds: s.expirationSeconds } : {}),
    ...(s.username ? { onBehalfOf: s.username } : {}),
    // Always sent, empty when the CSR names none: the CA issues exactly what was asked, or refuses naming the usage.
    usages: [...(s.usages ?? [])],
  };
}

/** The chain to write into status.certificate: the leaf, then the intermediates the CA serves with it. */
export function chainPem(issued: Pick<IssuedCertificate, 'certificate' | 'chain'>): string {
  return [issued.certificate, ...(issued.chain ?? [])].map((p) => (p.endsWith('\n') ? p : `${p}\n`)).join('');
}

/** Refusals: the CA looked at the request and will never sign it. Everything else may pass on a later try. */
const FINAL: ReadonlySet<Reason> = new Set<Reason>(['Forbidden', 'Invalid', 'BadRequest', 'RequestEntityTooLarge', 'UnsupportedMediaType']);

/** How often CSRs the CA service could not sign are tried again (see CsrSigner.retryWhenCaBack). */
export const CA_RETRY_MS = 5000;

/** The note on a CSR whose signing waits for the CA service; `why` names the CA and what failed. */
export function caWaitNote(why: string): string {
  return `waiting for the CA service: ${why}; the signer tries again every ${CA_RETRY_MS / 1000} s and issues the certificate once the CA answers`;
}

export type CaOutcome = { outcome: 'fail'; reason: string; message: string } | { outcome: 'retry'; message: string };

/**
 * A CA refusal becomes a Failed condition; an unreachable or busy CA (Unavailable, Timeout, Internal, a cluster that is
 * still being created, transport errors) is retried with backoff and never fails the request.
 */
export function classifyCaError(e: unknown): CaOutcome {
  if (e instanceof TrustplaneError && FINAL.has(e.reason)) return { outcome: 'fail', reason: FAILED_REASON, message: e.message };
  return { outcome: 'retry', message: e instanceof Error ? e.message : String(e) };
}
