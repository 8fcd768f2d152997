// The TPM attestation endpoint of a cluster's API server: a node of a shielded pool proves it holds the TPM enrolled
// for its name (credential activation against the enrolled EK) and its measured boot state (a PCR quote over a fresh
// nonce), and only then is its kubelet client CSR created, under the endpoint's own identity, with the evidence.
//
// Unauthenticated (the node holds nothing yet), as the bootstrap path is over TLS; the proof is the TPM. Every refusal
// is a 403 Status saying which check failed, and an audit line in the host log. Open challenges are kept in memory,
// one minute each, answered once: a challenge answered again (a replay) or on another API server replica is refused.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseCsr } from '../../pki/index.js';
import { nodeNameProblem } from '../../pki/node-identity.js';
import type { Store } from '../../store/client.js';
import {
  ekFingerprint,
  getEnrollment,
  listEnrollments,
  pinPcrValues,
  putEnrollment,
  putAttestation,
  readShieldedPolicy,
  requestDigest,
  type AttestationRecord,
  type TpmEnrollment,
} from '../../tpm/enrollment.js';
import { verifyEkCertificate } from '../../tpm/ek-certificate.js';
import { credentialFile, makeCredential } from '../../tpm/make-credential.js';
import {
  EXTRA_ATTESTED_NODE,
  TPM_ATTESTATION_ANNOTATION,
  TPM_ATTESTATION_PATH,
  TPM_ATTESTOR_USER,
  type AnswerResult,
  type AttestationEvidence,
  type AttestationStatus,
  type Challenge,
  type ChallengeAnswer,
  type ChallengeRequest,
} from '../../tpm/protocol.js';
import { quoteQualifyingData, verifyQuote } from '../../tpm/quote.js';
import { akAttributesProblem, parseTpm2bPublic, type TpmPublic } from '../../tpm/structures.js';
import type { Clock } from '../../util/clock.js';
import { TrustplaneError } from '../../util/errors.js';
import { EXTRA_SOURCE_ADDRESS } from '../auth/authenticate.js';
import { parseJson, readBody } from '../http/body.js';
import { sendError, sendJson } from '../http/respond.js';
import { SIGNER_KUBELET_CLIENT, isDenied, isFailed, type CertificateSigningRequest, type CsrRegistry } from '../registry/csr.js';
import { ApiError, badRequestError, methodNotAllowedError } from '../status.js';

const CHALLENGE_TTL_MS = 60_000;
/** Answered challenges are kept this long so the node can read its certificate by the challenge id. */
const ANSWERED_TTL_MS = 15 * 60_000;
const MAX_CHALLENGES = 10_000;
const MAX_OPEN_PER_NODE = 4;
const MAX_BODY = 64 * 1024;

export type AuditLog = (msg: string, fields: Record<string, unknown>) => void;

export interface TpmAttestationDeps {
  cluster: string;
  store: Store;
  csrs: CsrRegistry;
  clock: Clock;
  audit: AuditLog;
}

interface OpenChallenge {
  id: string;
  nodeName: string;
  pool: string;
  ek: string;
  ak: TpmPublic;
  secret: Buffer;
  nonce: Buffer;
  pcrs: number[];
  expiresAt: number;
  answered?: { csrName: string; at: number };
  source?: string;
  /** An enrollment by EK certificate, written once the answer proves the TPM. */
  pendingEnrollment?: TpmEnrollment;
}

const b64 = (v: unknown, what: string): Buffer => {
  if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) throw badRequestError(`${what} must be a base64 string`);
  return Buffer.from(v, 'base64');
};
const str = (v: unknown, what: string): string => {
  if (typeof v !== 'string' || !v) throw badRequestError(`${what} must be a non-empty string`);
  return v;
};

class Refusal extends ApiError {
  constructor(
    message: string,
    readonly check: string,
  ) {
    super('Forbidden', message, { group: 'trustplane.io', kind: 'tpmattestations' });
  }
}

export class TpmAttestationEndpoint {
  private readonly challenges = new Map<string, OpenChallenge>();

  constructor(private readonly d: TpmAttestationDeps) {}

  /** Serves the request (true) when it is for the attestation endpoint. */
  serve(req: IncomingMessage, res: ServerResponse, method: string, path: string): boolean {
    if (path !== TPM_ATTESTATION_PATH && !path.startsWith(`${TPM_ATTESTATION_PATH}/`)) return false;
    const id = path.slice(TPM_ATTESTATION_PATH.length + 1);
    const source = req.socket?.remoteAddress?.replace(/^::ffff:/, '');
    void (async () => {
      try {
        if (method === 'POST' && !id) return sendJson(res, 201, await this.challenge(this.body(await readBody(req, MAX_BODY)) as unknown as ChallengeRequest, source));
        if (method === 'POST' && id) return sendJson(res, 201, await this.answer(id, this.body(await readBody(req, MAX_BODY)) as unknown as ChallengeAnswer, source));
        if (method === 'GET' && id) return sendJson(res, 200, await this.status(id));
        throw methodNotAllowedError(method);
      } catch (e) {
        sendError(res, e);
      }
    })();
    return true;
  }

  private body(buf: Buffer): Record<string, unknown> {
    const v = parseJson(buf, 'the attestation request is not JSON');
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw badRequestError('the attestation request must be a JSON object');
    return v as Record<string, unknown>;
  }

  private refuse(node: string | undefined, check: string, message: string, fields: Record<string, unknown> = {}): never {
    this.d.audit(`tpm attestation refused: ${message}`, { audit: 'tpm-attestation', cluster: this.d.cluster, outcome: 'refused', check, node: node ?? null, ...fields });
    throw new Refusal(message, check);
  }

  private sweep(now: number): void {
    for (const [id, c] of this.challenges) if ((c.answered ? c.answered.at + ANSWERED_TTL_MS : c.expiresAt) < now) this.challenges.delete(id);
  }

  /** Step one: the EK must be the one enrolled for the node name, the AK a TPM-resident restricted signing key. */
  async challenge(b: ChallengeRequest, source?: string): Promise<Challenge> {
    const nodeName = str(b.nodeName, 'nodeName');
    const problem = nodeNameProblem(nodeName);
    if (problem) throw badRequestError(problem);
    const ekPem = str(b.ekPublic, 'ekPublic');
    let ekFp: string;
    try {
      ekFp = ekFingerprint(ekPem);
    } catch (e) {
      throw badRequestError((e as Error).message);
    }
    let enrolled: (TpmEnrollment & { modRevision?: bigint }) | null = await getEnrollment(this.d.store, nodeName);
    // Enrolled by its EK certificate only once it has proven the TPM (the answer): an EK certificate is public.
    const byCertificate = !enrolled && b.pool !== undefined ? await this.certificateEnrollment(nodeName, str(b.pool, 'pool'), ekPem, ekFp, b.ekCertificate, source) : undefined;
    enrolled ??= byCertificate ?? null;
    if (!enrolled) {
      this.refuse(nodeName, 'enrollment', `no TPM is enrolled for node "${nodeName}" in cluster ${this.d.cluster} (EK sha256:${ekFp}); an administrator enrolls it with \`trustplane node-pools enroll POOL --cluster ${this.d.cluster} --ek-pub FILE --node-name ${nodeName}\``, { ek: ekFp, source });
    }
    if (enrolled.ekFingerprint !== ekFp) {
      this.refuse(nodeName, 'enrollment', `the TPM (EK sha256:${ekFp}) is not the one enrolled for node "${nodeName}" (EK sha256:${enrolled.ekFingerprint}): a node may join only under the name its TPM is enrolled for`, { ek: ekFp, enrolledEk: enrolled.ekFingerprint, source });
    }
    const policy = await readShieldedPolicy(this.d.store, enrolled.pool);
    if (!policy) this.refuse(nodeName, 'pool', `node "${nodeName}" is enrolled in node pool "${enrolled.pool}", which is not a shielded pool (any more)`, { ek: ekFp, pool: enrolled.pool });
    let ak: TpmPublic;
    try {
      ak = parseTpm2bPublic(b64(b.akPublic, 'akPublic'), 'the attestation key');
    } catch (e) {
      if (e instanceof ApiError) throw e;
      this.refuse(nodeName, 'ak', (e as Error).message, { ek: ekFp });
    }
    const attrs = akAttributesProblem(ak.attributes);
    if (attrs) this.refuse(nodeName, 'ak', attrs, { ek: ekFp });
    if (!b64(b.akName, 'akName').equals(ak.name)) this.refuse(nodeName, 'ak', 'the attestation key\'s name does not match its public area', { ek: ekFp });

    const now = this.d.clock.now().getTime();
    this.sweep(now);
    const open = [...this.challenges.values()].filter((c) => c.nodeName === nodeName && !c.answered);
    if (open.length >= MAX_OPEN_PER_NODE || this.challenges.size >= MAX_CHALLENGES) {
      throw new ApiError('Unavailable', `too many open attestation challenges${open.length >= MAX_OPEN_PER_NODE ? ` for node "${nodeName}"` : ''}; try again in a minute`);
    }
    const secret = randomBytes(32);
    const nonce = randomBytes(32);
    // Made against the enrolled EK, not the one sent: only that TPM can activate it.
    const cred = makeCredential(enrolled.ekPublic, ak.name, secret);
    const id = randomBytes(16).toString('hex');
    const c: OpenChallenge = {
      id,
      nodeName,
      pool: enrolled.pool,
      ek: enrolled.ekFingerprint,
      ak,
      secret,
      nonce,
      pcrs: policy.pcrs,
      expiresAt: now + CHALLENGE_TTL_MS,
      source,
      ...(byCertificate ? { pendingEnrollment: byCertificate } : {}),
    };
    this.challenges.set(id, c);
    return { challengeId: id, credential: credentialFile(cred).toString('base64'), nonce: nonce.toString('base64'), pcrs: policy.pcrs, expiresAt: new Date(c.expiresAt).toISOString() };
  }

  /**
   * A pool with a manufacturer CA bundle enrolls a TPM whose EK certificate chains to it, for the node name it asks
   * first: one TPM, one node name, and a name once taken stays with its TPM. The enrollment is written only when the
   * answer has proven possession of the TPM (see writePendingEnrollment).
   */
  private async certificateEnrollment(nodeName: string, pool: string, ekPem: string, ekFp: string, certB64: unknown, source?: string): Promise<TpmEnrollment> {
    const policy = await readShieldedPolicy(this.d.store, pool);
    const fields = { ek: ekFp, pool, source };
    if (!policy?.ekCaBundle) this.refuse(nodeName, 'enrollment', `node pool "${pool}" does not enroll TPMs by EK certificate, and no TPM is enrolled for node "${nodeName}"`, fields);
    if (certB64 === undefined) this.refuse(nodeName, 'enrollment', `no TPM is enrolled for node "${nodeName}", and the TPM (EK sha256:${ekFp}) presented no EK certificate for pool "${pool}" to check`, fields);
    let issuer: string;
    try {
      issuer = verifyEkCertificate(b64(certB64, 'ekCertificate'), policy.ekCaBundle, ekPem, this.d.clock.now()).issuer;
    } catch (e) {
      if (e instanceof ApiError) throw e;
      this.refuse(nodeName, 'ek-certificate', `the EK certificate of the TPM asking to be node "${nodeName}" is refused: ${(e as Error).message}`, fields);
    }
    await this.checkOneNodePerTpm(nodeName, ekFp, fields);
    return { nodeName, pool, ekPublic: ekPem, ekFingerprint: ekFp, enrolledAt: this.d.clock.now().toISOString(), enrolledBy: 'ek-certificate', ekIssuer: issuer };
  }

  private async checkOneNodePerTpm(nodeName: string, ekFp: string, fields: Record<string, unknown>): Promise<void> {
    const other = (await listEnrollments(this.d.store)).find((x) => x.ekFingerprint === ekFp && x.nodeName !== nodeName);
    if (other) this.refuse(nodeName, 'enrollment', `the TPM (EK sha256:${ekFp}) is already enrolled as node "${other.nodeName}": one TPM is one node`, fields);
  }

  /** Writes the enrollment a proven TPM asked for by its EK certificate; refused when the name was taken meanwhile. */
  private async writePendingEnrollment(e: TpmEnrollment, fields: Record<string, unknown>): Promise<void> {
    await this.checkOneNodePerTpm(e.nodeName, e.ekFingerprint, fields);
    try {
      await putEnrollment(this.d.store, e, true);
    } catch (err) {
      if (!(err instanceof TrustplaneError && err.reason === 'AlreadyExists')) throw err;
      this.refuse(e.nodeName, 'enrollment', `node name "${e.nodeName}" was taken by another TPM during the attestation`, fields);
    }
    this.d.audit(`tpm enrolled by its EK certificate: node ${e.nodeName} of pool ${e.pool}`, { audit: 'tpm-attestation', cluster: this.d.cluster, outcome: 'enrolled', node: e.nodeName, ...fields, pool: e.pool, ekIssuer: e.ekIssuer });
  }

  /** Step two: the activated secret, the quote over nonce + CSR key, the PCRs against the policy; then the CSR. */
  async answer(id: string, b: ChallengeAnswer, source?: string): Promise<AnswerResult> {
    const now = this.d.clock.now().getTime();
    const c = this.challenges.get(id);
    if (!c || (!c.answered && c.expiresAt < now)) this.refuse(undefined, 'challenge', `attestation challenge ${id.slice(0, 64)} is unknown or expired (challenges live ${CHALLENGE_TTL_MS / 1000} s on the API server that made them); ask for a new one`, { source });
    const node = c.nodeName;
    if (c.answered) this.refuse(node, 'replay', `attestation challenge ${id} was already answered (by CSR ${c.answered.csrName}): an answer is accepted once, a replayed one never`, { ek: c.ek, source });
    // Spent now, whatever follows: a wrong answer cannot be retried against the same secret and nonce.
    c.answered = { csrName: '', at: now };
    const fields = { ek: c.ek, challenge: id, source };
    const secret = b64(b.secret, 'secret');
    if (secret.length !== c.secret.length || !timingSafeEqual(secret, c.secret)) {
      this.refuse(node, 'activation', `credential activation failed: the attestation key is not resident in the TPM whose EK (sha256:${c.ek}) is enrolled for node "${node}"`, fields);
    }
    const requestText = str(b.request, 'request');
    let spki: Buffer;
    try {
      spki = parseCsr(Buffer.from(requestText, 'base64').toString('latin1')).publicKey;
    } catch (e) {
      throw badRequestError(`the certificate request cannot be read: ${(e as Error).message}`);
    }
    const q = (b.quote ?? {}) as { attest?: unknown; signature?: unknown };
    let verified: ReturnType<typeof verifyQuote>;
    try {
      verified = verifyQuote(c.ak, b64(q.attest, 'quote.attest'), b64(q.signature, 'quote.signature'), quoteQualifyingData(c.nonce, spki), c.pcrs, (b.pcrValues ?? {}) as Record<string, string>);
    } catch (e) {
      if (e instanceof ApiError) throw e;
      this.refuse(node, 'quote', `the PCR quote of node "${node}" is refused: ${(e as Error).message}`, fields);
    }
    const values = Object.fromEntries(verified.pcrs.map((i) => [String(i), String(b.pcrValues[String(i)]).toLowerCase()]));
    if (c.pendingEnrollment) await this.writePendingEnrollment(c.pendingEnrollment, fields);
    const enrolled = await getEnrollment(this.d.store, node);
    if (!enrolled || enrolled.ekFingerprint !== c.ek) this.refuse(node, 'enrollment', `node "${node}"'s TPM enrollment changed during the attestation; try again`, fields);
    await this.checkPcrs(enrolled, values, fields);

    const csrName = `node-csr-${createHash('sha256').update(spki).update(node).update(id).digest('hex').slice(0, 32)}`;
    const evidence: AttestationEvidence = { ekFingerprint: c.ek, akName: c.ak.name.toString('hex'), pcrs: verified.pcrs, pcrDigest: verified.pcrDigestHex, nonce: c.nonce.toString('hex'), challengeId: id };
    const record: AttestationRecord = { csrName, nodeName: node, pool: c.pool, requestDigest: requestDigest(requestText), ...evidence, attestedAt: new Date(now).toISOString() };
    // The record first: the approver approves only a CSR whose record exists, never one the endpoint did not finish.
    await putAttestation(this.d.store, record);
    const csr = {
      apiVersion: 'certificates.k8s.io/v1',
      kind: 'CertificateSigningRequest',
      metadata: { name: csrName, annotations: { [TPM_ATTESTATION_ANNOTATION]: JSON.stringify(evidence) } },
      spec: {
        request: requestText,
        signerName: SIGNER_KUBELET_CLIENT,
        usages: ['digital signature', 'client auth'],
        ...(typeof b.expirationSeconds === 'number' ? { expirationSeconds: b.expirationSeconds } : {}),
      },
    } as CertificateSigningRequest;
    const extra: Record<string, string[]> = { [EXTRA_ATTESTED_NODE]: [node], ...(source ? { [EXTRA_SOURCE_ADDRESS]: [source] } : {}) };
    await this.d.csrs.create(csr, { name: TPM_ATTESTOR_USER, groups: ['system:authenticated'], extra });
    c.answered = { csrName, at: now };
    this.d.audit(`tpm attestation of node ${node} succeeded: CSR ${csrName} created`, { audit: 'tpm-attestation', cluster: this.d.cluster, outcome: 'attested', node, csr: csrName, ...evidence });
    return { csrName, evidence };
  }

  /** The node's PCR values against those pinned for it (at enrollment, else by its first attestation, pinned now). */
  private async checkPcrs(e: TpmEnrollment & { modRevision: bigint }, values: Record<string, string>, fields: Record<string, unknown>): Promise<void> {
    if (!e.pcrValues) {
      if (!(await pinPcrValues(this.d.store, e, values))) this.refuse(e.nodeName, 'pcrs', `node "${e.nodeName}"'s enrollment changed during the attestation; try again`, fields);
      return;
    }
    const changed = Object.keys(values)
      .map(Number)
      .filter((i) => e.pcrValues![String(i)] !== undefined && e.pcrValues![String(i)] !== values[String(i)]);
    const missing = Object.keys(values).filter((i) => e.pcrValues![i] === undefined);
    if (changed.length || missing.length) {
      const what = changed.map((i) => `PCR ${i} is ${values[String(i)]}, expected ${e.pcrValues![String(i)]}`).join('; ');
      this.refuse(
        e.nodeName,
        'pcrs',
        `the measured boot state of node "${e.nodeName}" differs from what its enrollment allows: ${what}${missing.length ? `${what ? '; ' : ''}no expected value for PCR ${missing.join(', ')}` : ''}` +
          ` (PCRs ${[...changed, ...missing].join(',')} changed); if the change is intended, enroll the node again with its new values`,
        { ...fields, pcrs: [...changed, ...missing.map(Number)] },
      );
    }
  }

  /** Where the CSR of an answered challenge stands: its certificate once issued. */
  async status(id: string): Promise<AttestationStatus> {
    const c = this.challenges.get(id);
    if (!c?.answered?.csrName) throw new ApiError('NotFound', `attestation challenge ${id.slice(0, 64)} is unknown, unanswered or expired`);
    const csr = await this.d.csrs.objects.tryGet(c.answered.csrName);
    if (!csr) return { csrName: c.answered.csrName, denied: `CSR ${c.answered.csrName} was deleted before a certificate was issued` };
    const cond = (csr.status?.conditions ?? []).find((x) => (x.type === 'Denied' || x.type === 'Failed') && x.status === 'True');
    if (isDenied(csr) || isFailed(csr)) return { csrName: csr.metadata.name, denied: `${cond?.type}${cond?.reason ? ` (${cond.reason})` : ''}: ${cond?.message ?? ''}` };
    return { csrName: csr.metadata.name, ...(csr.status?.certificate ? { certificate: csr.status.certificate } : {}), ...(csr.metadata.annotations?.['trustplane.io/approval-note'] ? { note: csr.metadata.annotations['trustplane.io/approval-note'] } : {}) };
  }
}
