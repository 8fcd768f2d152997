// Shielded node pools in the cluster's store: which TPM (by its endorsement key) may be node N, which PCRs its pool
// quotes, the PCR values pinned for it, and the attestation record each attested CSR is approved against.
//
// The pool's shielded policy lives in the node pool record (src/fleet/node-pools.ts writes it); enrollments and
// attestation records are keyed by node name and CSR name, so the approver finds them with one read.
import { createHash, createPublicKey } from 'node:crypto';
import { NODE_POOL_PREFIX } from '../controllers/node-pool-policy.js';
import type { Store } from '../store/client.js';
import { TrustplaneError, invalid } from '../util/errors.js';
import type { PcrValues } from './quote.js';

export const TPM_ENROLLMENT_PREFIX = '/registry/trustplane/tpm-enrollments/';
export const TPM_ATTESTATION_PREFIX = '/registry/trustplane/tpm-attestations/';
/** The PCRs a shielded pool quotes unless told: firmware, its config, option ROMs, and Secure Boot policy. */
export const DEFAULT_SHIELDED_PCRS = [0, 1, 2, 3, 7];

/** A shielded pool's policy, kept in its node pool record. */
export interface ShieldedPolicy {
  /** SHA-256 PCR indices every quote must cover. */
  pcrs: number[];
  /** PEM manufacturer CAs: a TPM whose EK certificate chains to one is enrolled by its first attestation. */
  ekCaBundle?: string;
}

export interface TpmEnrollment {
  nodeName: string;
  pool: string;
  /** PEM SubjectPublicKeyInfo of the TPM's endorsement key. */
  ekPublic: string;
  /** sha256 over the EK's DER SubjectPublicKeyInfo, hex. */
  ekFingerprint: string;
  enrolledAt: string;
  /** Expected PCR values (index → hex): given at enrollment, else pinned by the node's first attestation. */
  pcrValues?: PcrValues;
  pcrValuesFrom?: 'enrollment' | 'first-attestation';
  /** How the TPM was enrolled: by an operator (its EK), or by its EK certificate against the pool's CA bundle. */
  enrolledBy?: 'operator' | 'ek-certificate';
  /** For enrolledBy ek-certificate: the CA that issued the EK certificate. */
  ekIssuer?: string;
}

/** What an attested CSR is approved against: written by the attestation endpoint before it creates the CSR. */
export interface AttestationRecord {
  csrName: string;
  nodeName: string;
  pool: string;
  /** sha256 of the CSR's spec.request (base64 text as stored). */
  requestDigest: string;
  ekFingerprint: string;
  akName: string;
  pcrs: number[];
  pcrDigest: string;
  nonce: string;
  attestedAt: string;
}

export function ekFingerprint(ekPem: string): string {
  let der: Buffer;
  try {
    der = createPublicKey(ekPem).export({ type: 'spki', format: 'der' });
  } catch (e) {
    throw invalid(`the endorsement key is not a PEM public key: ${(e as Error).message}`, 'pass the file `trustplane node tpm ek --tcti ...` prints on the node');
  }
  return createHash('sha256').update(der).digest('hex');
}

export function checkPcrList(pcrs: number[]): number[] {
  const out = [...new Set(pcrs)].sort((a, b) => a - b);
  if (!out.length || out.some((p) => !Number.isInteger(p) || p < 0 || p > 23)) throw invalid(`PCR policy ${JSON.stringify(pcrs)} is not a list of PCR indices 0-23`, 'pass e.g. --pcr-policy 0,1,2,3,7');
  return out;
}

/** The pool's shielded policy, or null when the pool is not shielded (or does not exist). */
export async function readShieldedPolicy(store: Store, pool: string): Promise<ShieldedPolicy | null> {
  const kv = await store.get(NODE_POOL_PREFIX + pool);
  if (!kv) return null;
  try {
    const p = JSON.parse(kv.value.toString('utf8')) as { shielded?: ShieldedPolicy };
    if (!p.shielded || !Array.isArray(p.shielded.pcrs)) return null;
    return { pcrs: p.shielded.pcrs, ...(typeof p.shielded.ekCaBundle === 'string' ? { ekCaBundle: p.shielded.ekCaBundle } : {}) };
  } catch {
    return null;
  }
}

export async function getEnrollment(store: Store, nodeName: string): Promise<(TpmEnrollment & { modRevision: bigint }) | null> {
  const kv = await store.get(TPM_ENROLLMENT_PREFIX + nodeName);
  return kv ? { ...(JSON.parse(kv.value.toString('utf8')) as TpmEnrollment), modRevision: BigInt(kv.modRevision) } : null;
}

export async function putEnrollment(store: Store, e: TpmEnrollment, ifAbsent: boolean): Promise<void> {
  if (ifAbsent) {
    if (!(await store.createIfAbsent(TPM_ENROLLMENT_PREFIX + e.nodeName, JSON.stringify(e)))) {
      throw new TrustplaneError('AlreadyExists', `node "${e.nodeName}" already has an enrolled TPM`, 'remove it first with `trustplane node-pools unenroll POOL --node-name NAME`');
    }
  } else await store.put(TPM_ENROLLMENT_PREFIX + e.nodeName, JSON.stringify(e));
}

/** Pins the PCR values of a node's first attestation; false when someone pinned (or changed) it first. */
export async function pinPcrValues(store: Store, e: TpmEnrollment & { modRevision: bigint }, values: PcrValues): Promise<boolean> {
  const { modRevision, ...rec } = e;
  const next: TpmEnrollment = { ...rec, pcrValues: values, pcrValuesFrom: 'first-attestation' };
  return (await store.updateIfModRevision(TPM_ENROLLMENT_PREFIX + e.nodeName, JSON.stringify(next), modRevision)).ok;
}

export async function deleteEnrollment(store: Store, nodeName: string): Promise<boolean> {
  return (await store.delete(TPM_ENROLLMENT_PREFIX + nodeName)).deleted > 0;
}

export async function listEnrollments(store: Store): Promise<TpmEnrollment[]> {
  const r = await store.getPrefix(TPM_ENROLLMENT_PREFIX);
  return r.kvs.map((kv) => JSON.parse(kv.value.toString('utf8')) as TpmEnrollment).sort((a, b) => a.nodeName.localeCompare(b.nodeName));
}

export async function putAttestation(store: Store, a: AttestationRecord): Promise<void> {
  await store.put(TPM_ATTESTATION_PREFIX + a.csrName, JSON.stringify(a));
}

export async function getAttestation(store: Store, csrName: string): Promise<AttestationRecord | null> {
  const kv = await store.get(TPM_ATTESTATION_PREFIX + csrName);
  return kv ? (JSON.parse(kv.value.toString('utf8')) as AttestationRecord) : null;
}

/** sha256 of a CSR's spec.request, as an attestation record names it. */
export function requestDigest(specRequest: string): string {
  return createHash('sha256').update(specRequest).digest('hex');
}
