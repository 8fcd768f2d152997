// The TPM attestation exchange of the cluster API server (POST /apis/trustplane.io/v1/tpmattestations), shared by the
// endpoint and the node agent. Two steps, no credential: a challenge (credential activation + nonce), then the answer
// (the activated secret, a quote binding the nonce to the CSR's key, the CSR); then the node reads its certificate.
export const TPM_ATTESTATION_PATH = '/apis/trustplane.io/v1/tpmattestations';
/** The annotation on an attested CSR: the evidence the endpoint checked and the approver approves against. */
export const TPM_ATTESTATION_ANNOTATION = 'trustplane.io/tpm-attestation';
/** The identity an attested CSR is created under: the endpoint itself, never a node or a token. */
export const TPM_ATTESTOR_USER = 'system:trustplane:tpm-attestor';
/** spec.extra of an attested CSR: the node the attestation was for. */
export const EXTRA_ATTESTED_NODE = 'trustplane.io/attested-node';

export interface ChallengeRequest {
  nodeName: string;
  /** PEM public key of the endorsement key. */
  ekPublic: string;
  /** base64 TPM2B_PUBLIC of the new attestation key. */
  akPublic: string;
  /** base64 of the AK's name as the TPM reports it; checked against its public area. */
  akName: string;
  /** For a pool that enrolls by EK certificate: the pool, and the TPM's EK certificate (base64 DER, NV 0x01c00002). */
  pool?: string;
  ekCertificate?: string;
}

export interface Challenge {
  challengeId: string;
  /** base64 of tpm2-tools' credential file (TPM2B_ID_OBJECT + TPM2B_ENCRYPTED_SECRET). */
  credential: string;
  /** base64 nonce; the quote's qualifying data is quoteQualifyingData(nonce, CSR SPKI). */
  nonce: string;
  /** SHA-256 PCRs to quote. */
  pcrs: number[];
  expiresAt: string;
}

export interface ChallengeAnswer {
  /** base64 of the secret ActivateCredential returned. */
  secret: string;
  /** base64 TPMS_ATTEST and TPMT_SIGNATURE of the quote. */
  quote: { attest: string; signature: string };
  /** PCR index → hex value, of the SHA-256 bank. */
  pcrValues: Record<string, string>;
  /** base64 of the PEM CERTIFICATE REQUEST (CN=system:node:<name>, O=system:nodes). */
  request: string;
  expirationSeconds?: number;
}

export interface AttestationEvidence {
  ekFingerprint: string;
  akName: string;
  pcrs: number[];
  pcrDigest: string;
  nonce: string;
  challengeId: string;
}

export interface AnswerResult {
  csrName: string;
  evidence: AttestationEvidence;
}

export interface AttestationStatus {
  csrName: string;
  /** base64 PEM chain once issued. */
  certificate?: string;
  /** Set when the CSR was denied or failed, or a note why it waits. */
  denied?: string;
  note?: string;
}
