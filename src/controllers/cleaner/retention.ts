// How long a CSR is kept, as Kubernetes' csrcleaner (pkg/controller/certificates/cleaner), as one pure function.
//
// Kubernetes deletes a CSR when any of these holds:
//   issued    Approved with a certificate, the Approved condition last updated more than 1 hour ago (approvedExpiration)
//   denied    Denied, the Denied condition last updated more than 1 hour ago (deniedExpiration)
//   failed    Failed, the Failed condition last updated more than 1 hour ago (deniedExpiration as well)
//   pending   no condition at all, created more than 24 hours ago (pendingExpiration)
//   expired   Approved with a certificate whose notAfter has passed
// and it looks every hour (pollingInterval). Two differences here, both so that nothing lives forever:
//   - an Approved request that never got a certificate (an unknown signer, a CA that never answered) is deleted 24 hours
//     after creation; Kubernetes keeps it until someone deletes it by hand;
//   - a condition without lastUpdateTime counts from the CSR's creation; Kubernetes never deletes on a zero time.
import { isApproved, isDenied, isFailed, isIssued, type CertificateSigningRequest, type CsrCondition } from '../../apiserver/index.js';
import { parseCertificates } from '../../pki/index.js';

const HOUR_MS = 3600_000;

export const APPROVED_EXPIRATION_MS = HOUR_MS;
export const DENIED_EXPIRATION_MS = HOUR_MS;
export const FAILED_EXPIRATION_MS = HOUR_MS;
export const PENDING_EXPIRATION_MS = 24 * HOUR_MS;

export type RetentionVerdict = { delete: true; why: string } | { delete: false };

const KEEP: RetentionVerdict = { delete: false };

function condition(csr: CertificateSigningRequest, type: string): CsrCondition | undefined {
  return (csr.status?.conditions ?? []).find((c) => c.type === type && c.status === 'True');
}

function timeOf(s: string | null | undefined): number | undefined {
  if (!s) return undefined;
  const t = Date.parse(s);
  return Number.isNaN(t) ? undefined : t;
}

/** The leaf's notAfter, or undefined when the certificate cannot be read (such a CSR is judged by its age alone). */
function certificateNotAfter(csr: CertificateSigningRequest): number | undefined {
  try {
    return parseCertificates(Buffer.from(csr.status!.certificate!, 'base64').toString('latin1'))[0]?.notAfter.getTime();
  } catch {
    return undefined;
  }
}

/** Should this CSR be deleted at `now`? */
export function retentionVerdict(csr: CertificateSigningRequest, now: Date): RetentionVerdict {
  const t = now.getTime();
  const created = timeOf(csr.metadata.creationTimestamp);
  const olderThan = (c: CsrCondition | undefined, ms: number) => {
    const since = timeOf(c?.lastUpdateTime) ?? created;
    return since !== undefined && t - since > ms;
  };
  const approved = isApproved(csr);
  if (approved && isIssued(csr)) {
    const notAfter = certificateNotAfter(csr);
    if (notAfter !== undefined && t > notAfter) return { delete: true, why: 'its certificate has expired' };
    if (olderThan(condition(csr, 'Approved'), APPROVED_EXPIRATION_MS)) return { delete: true, why: 'issued more than 1 hour ago' };
  }
  if (isDenied(csr) && olderThan(condition(csr, 'Denied'), DENIED_EXPIRATION_MS)) return { delete: true, why: 'denied more than 1 hour ago' };
  if (isFailed(csr) && olderThan(condition(csr, 'Failed'), FAILED_EXPIRATION_MS)) return { delete: true, why: 'failed more than 1 hour ago' };
  if (!approved && !isDenied(csr) && !isFailed(csr) && created !== undefined && t - created > PENDING_EXPIRATION_MS) {
    return { delete: true, why: 'pending for more than 24 hours' };
  }
  if (approved && !isIssued(csr) && !isDenied(csr) && !isFailed(csr) && created !== undefined && t - created > PENDING_EXPIRATION_MS) {
    return { delete: true, why: 'approved more than 24 hours ago but never issued' };
  }
  return KEEP;
}
