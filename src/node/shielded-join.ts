// A shielded node's client certificate: TPM attestation instead of a bootstrap token. The agent proves the TPM whose EK
// is enrolled for its name (ActivateCredential on the API server's challenge) and its PCRs (a quote over the nonce and
// the new key), and the API server files the CSR for it; the node reads its certificate by the challenge id.
//
// The client key is a software key (node's TLS cannot use a TPM-resident key without an OpenSSL provider; see the
// README), bound to the attestation: the quote the AK signs covers a hash of the CSR's public key.
import { createPrivateKey } from 'node:crypto';
import { GROUP_NODES, NODE_USER_PREFIX } from '../apiserver/types.js';
import { buildCsr, pemEncode, softSigner } from '../pki/index.js';
import { TpmDriver } from '../tpm/driver.js';
import { TPM_ATTESTATION_PATH, type AnswerResult, type AttestationStatus, type Challenge, type ChallengeAnswer, type ChallengeRequest } from '../tpm/protocol.js';
import { quoteQualifyingData } from '../tpm/quote.js';
import type { Clock } from '../util/clock.js';
import { formatDuration } from '../util/duration.js';
import { TrustplaneError } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { ApiClient, isApiError } from './api-client.js';
import { checkIssued, pendingKey, type IssuedCredential } from './certificate-request.js';
import type { NodeState } from './state.js';
import type { MinVersion } from '../tls/policy.js';

export interface ShieldedRequestOptions {
  server: string;
  /** The cluster root CA bundle: the API server is verified by it, and the certificate must chain to it. */
  caBundle: string;
  nodeName: string;
  tcti: string;
  /** A pool that enrolls TPMs by EK certificate: the node sends it and its EK certificate. */
  pool?: string;
  state: NodeState;
  clock: Clock;
  log: Logger;
  timeoutMs: number;
  expirationSeconds?: number;
  minVersion?: MinVersion;
}

/** The refusal of the attestation endpoint as the agent reports it: what the API server said and what to do. */
function refused(e: unknown, node: string): never {
  if (isApiError(e, 403)) {
    throw new TrustplaneError(
      'Forbidden',
      `the API server refused the TPM attestation of node ${node}: ${e.message}`,
      'an administrator sees the reason in the host log (audit "tpm-attestation") and enrolls the TPM with `trustplane node-pools enroll POOL --cluster CLUSTER --ek-pub FILE --node-name NAME`',
    );
  }
  throw e;
}

/** Attests the TPM and gets the node's kubelet client certificate; writes it with its key to the node data dir. */
export async function requestAttestedCertificate(o: ShieldedRequestOptions): Promise<IssuedCredential> {
  const tpm = new TpmDriver(o.tcti);
  // No credential: the TPM is the proof. (An empty token sends no Authorization header.)
  const api = new ApiClient(o.server, { token: '', ca: o.caBundle }, { minVersion: o.minVersion });
  try {
    const ekPublic = await tpm.ekPublicPem();
    const ak = await tpm.createAk();
    const ekCertificate = o.pool ? await tpm.ekCertificate() : undefined;
    const ask: ChallengeRequest = {
      nodeName: o.nodeName,
      ekPublic,
      akPublic: ak.publicArea.toString('base64'),
      akName: ak.name.toString('base64'),
      ...(o.pool ? { pool: o.pool } : {}),
      ...(ekCertificate ? { ekCertificate: ekCertificate.toString('base64') } : {}),
    };
    const challenge = await api.post<Challenge>(TPM_ATTESTATION_PATH, ask).catch((e) => refused(e, o.nodeName));
    o.log.info({ challenge: challenge.challengeId, pcrs: challenge.pcrs }, 'TPM attestation: challenged; activating the credential');
    const secret = await tpm.activateCredential(Buffer.from(challenge.credential, 'base64'));

    const keyPem = await pendingKey(o.state, 'client');
    const signer = softSigner(createPrivateKey(keyPem));
    const der = await buildCsr({ subject: [{ type: 'O', value: GROUP_NODES }, { type: 'CN', value: `${NODE_USER_PREFIX}${o.nodeName}` }], signer });
    const quote = await tpm.quote(quoteQualifyingData(Buffer.from(challenge.nonce, 'base64'), signer.publicKey), challenge.pcrs);
    const pcrValues = await tpm.readPcrs(challenge.pcrs);
    const answer: ChallengeAnswer = {
      secret: secret.toString('base64'),
      quote: { attest: quote.attest.toString('base64'), signature: quote.signature.toString('base64') },
      pcrValues,
      request: Buffer.from(pemEncode('CERTIFICATE REQUEST', der)).toString('base64'),
      ...(o.expirationSeconds ? { expirationSeconds: o.expirationSeconds } : {}),
    };
    const result = await api.post<AnswerResult>(`${TPM_ATTESTATION_PATH}/${challenge.challengeId}`, answer).catch((e) => refused(e, o.nodeName));
    o.log.info({ csr: result.csrName, ...result.evidence }, 'TPM attestation accepted; waiting for the client certificate');

    const deadline = Date.now() + o.timeoutMs;
    let last: AttestationStatus | undefined;
    for (;;) {
      last = await api.get<AttestationStatus>(`${TPM_ATTESTATION_PATH}/${challenge.challengeId}`);
      if (last.denied) {
        o.state.removePendingKey('client');
        throw new TrustplaneError('Forbidden', `certificate signing request ${result.csrName} of node ${o.nodeName} was not issued: ${last.denied}`, `\`kubectl get csr ${result.csrName} -o yaml\` shows who decided`);
      }
      if (last.certificate) break;
      if (Date.now() >= deadline) {
        throw new TrustplaneError(
          'Timeout',
          `no client certificate was issued for node ${o.nodeName} within ${formatDuration(o.timeoutMs / 1000)}: CSR ${result.csrName} is ${last.note ? `pending; the approver says: ${last.note}` : 'pending'}`,
          `is the approver running? \`kubectl get csr ${result.csrName}\` shows its state`,
        );
      }
      await new Promise((r) => setTimeout(r, Math.min(500, Math.max(0, deadline - Date.now()))));
    }
    const chain = Buffer.from(last.certificate, 'base64').toString('utf8');
    const leaf = checkIssued(chain, signer.publicKey, o.caBundle, 'clientAuth', o.clock, `CSR ${result.csrName}`);
    o.state.writeCredential('client', chain, keyPem);
    o.state.removePendingKey('client');
    o.log.info({ csr: result.csrName, serial: leaf.serialHex, notAfter: leaf.notAfter.toISOString() }, 'client certificate issued after TPM attestation');
    return { cert: chain, key: keyPem, leaf, csrName: result.csrName };
  } finally {
    api.close();
    tpm.close();
  }
}
