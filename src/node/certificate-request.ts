// Getting one certificate through the certificates.k8s.io/v1 API: local key, CSR, watch until issued, denied or out of time.
import { createHash, createPrivateKey } from 'node:crypto';
import {
  SIGNER_KUBELET_CLIENT,
  SIGNER_KUBELET_SERVING,
  type CertificateSigningRequest,
} from '../apiserver/registry/csr.js';
import { GROUP_NODES, NODE_USER_PREFIX } from '../apiserver/types.js';
import { buildCsr, generateKeyPair, parseCertificates, parseCsr, pemEncode, softSigner, verifyChain, type ParsedCertificate } from '../pki/index.js';
import type { Clock } from '../util/clock.js';
import { formatDuration } from '../util/duration.js';
import { TrustplaneError } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { isApiError, type ApiClient } from './api-client.js';
import type { CredentialKind, NodeState, StoredCredential } from './state.js';

export const CSR_PATH = '/apis/certificates.k8s.io/v1/certificatesigningrequests';
/** The annotation the approver leaves on a request it does not approve by itself, saying why. */
const APPROVAL_NOTE = 'trustplane.io/approval-note';
/** The annotation the signer leaves on an approved request it cannot issue yet (the CA service unreachable, say). */
const SIGNING_NOTE = 'trustplane.io/signing-note';

export interface CertificateRequestSpec {
  kind: CredentialKind;
  nodeName: string;
  /** Subject alternative names (serving certificates). */
  sans?: { dns: string[]; ip: string[] };
  /** spec.expirationSeconds; the signer's default lifetime when absent. */
  expirationSeconds?: number;
}

export interface IssuedCredential extends StoredCredential {
  csrName: string;
}

export interface RequestOptions {
  api: ApiClient;
  state: NodeState;
  /** The cluster root CA bundle the issued certificate must chain to. */
  caBundle: string;
  clock: Clock;
  log: Logger;
  /** How long to wait for approval and issuance. */
  timeoutMs: number;
}

const SIGNERS: Record<CredentialKind, { signerName: string; usages: string[]; purpose: 'clientAuth' | 'serverAuth'; what: string }> = {
  client: { signerName: SIGNER_KUBELET_CLIENT, usages: ['digital signature', 'client auth'], purpose: 'clientAuth', what: 'client certificate' },
  server: { signerName: SIGNER_KUBELET_SERVING, usages: ['digital signature', 'server auth'], purpose: 'serverAuth', what: 'serving certificate' },
};

/**
 * The CSR's name follows from what it asks (key, signer, subject, usages, SANs), as the kubelet's "node-csr-<digest>":
 * an agent restarted while it waited finds its own request again instead of asking twice.
 */
export function csrNameFor(spki: Buffer, spec: CertificateRequestSpec): string {
  const s = SIGNERS[spec.kind];
  const h = createHash('sha256')
    .update(spki)
    .update(JSON.stringify([s.signerName, spec.nodeName, s.usages, spec.sans ?? null, spec.expirationSeconds ?? null]))
    .digest('hex');
  return `node-csr-${h.slice(0, 32)}`;
}

const conditionOf = (csr: CertificateSigningRequest, type: string) => (csr.status?.conditions ?? []).find((c) => c.type === type && c.status === 'True');

/** Where a request stands, for messages. */
function stateOf(csr: CertificateSigningRequest | undefined): string {
  if (!csr) return 'not seen yet';
  if (conditionOf(csr, 'Approved')) {
    const signing = csr.metadata.annotations?.[SIGNING_NOTE];
    return `approved, but no certificate has been issued${signing ? `; the signer says: ${signing}` : ''}`;
  }
  const note = csr.metadata.annotations?.[APPROVAL_NOTE];
  return note ? `pending; the approver says: ${note}` : 'pending (neither approved nor denied)';
}

/** The end of a request: its certificate chain (PEM), or the error saying why there is none. */
function outcome(csr: CertificateSigningRequest): string | TrustplaneError | undefined {
  const name = csr.metadata.name;
  const denied = conditionOf(csr, 'Denied');
  if (denied) {
    return new TrustplaneError(
      'Forbidden',
      `certificate signing request ${name} was denied${denied.reason ? ` (${denied.reason})` : ''}${denied.message ? `: ${denied.message}` : ''}`,
      `\`kubectl get csr ${name} -o yaml\` shows who decided; once the cause is fixed, run the join again (it makes a new request)`,
    );
  }
  const failed = conditionOf(csr, 'Failed');
  if (failed) {
    return new TrustplaneError(
      'Forbidden',
      `certificate signing request ${name} failed: the signer refused it${failed.reason ? ` (${failed.reason})` : ''}${failed.message ? `: ${failed.message}` : ''}`,
      `\`kubectl get csr ${name} -o yaml\` shows the signer's reason; run the join again once it is fixed (it makes a new request)`,
    );
  }
  if (csr.status?.certificate) return Buffer.from(csr.status.certificate, 'base64').toString('utf8');
  return undefined;
}

/** Waits on a WATCH of the one CSR until it is issued, denied or failed, or `timeoutMs` has passed. */
export async function waitForCertificate(
  api: ApiClient,
  name: string,
  timeoutMs: number,
  what: string,
  seen?: CertificateSigningRequest,
  /** Told each new note the signer leaves while the request waits (the CA service unreachable, say). */
  onSignerNote?: (note: string) => void,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  // Set from watch callbacks.
  let last = seen;
  let lastError = null as Error | null;
  if (seen) {
    const o = outcome(seen);
    if (o instanceof TrustplaneError) throw o;
    if (typeof o === 'string') return o;
  }
  // Watching from the revision already seen costs the server no list of every CSR (which, with thousands of nodes
  // joining, is what each join would otherwise pay); a revision compacted away (410) falls back to list-then-watch.
  let from = seen?.metadata.resourceVersion;
  const base = `${CSR_PATH}?watch=true&fieldSelector=${encodeURIComponent(`metadata.name=${name}`)}&timeoutSeconds=${Math.max(1, Math.ceil(timeoutMs / 1000))}`;
  while (Date.now() < deadline) {
    const path = from ? `${base}&resourceVersion=${encodeURIComponent(from)}` : base;
    const result = await new Promise<string | TrustplaneError | undefined>((resolve) => {
      let settled = false;
      const settle = (v: string | TrustplaneError | undefined) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        w.cancel();
        resolve(v);
      };
      const w = api.watch<CertificateSigningRequest>(path, (ev) => {
        if (ev.type === 'ERROR') {
          // "410 Expired" inside the stream: the revision is gone; list-then-watch from the start.
          if ((ev.object as unknown as { code?: number }).code === 410) from = undefined;
          return settle(undefined);
        }
        if (ev.type === 'DELETED') {
          return settle(new TrustplaneError('NotFound', `certificate signing request ${name} was deleted before a certificate was issued`, 'run the join again; `kubectl get csr` lists what is left'));
        }
        const note = ev.object.metadata.annotations?.[SIGNING_NOTE];
        if (note && note !== last?.metadata.annotations?.[SIGNING_NOTE]) onSignerNote?.(note);
        last = ev.object;
        from = ev.object.metadata.resourceVersion ?? from;
        const o = outcome(ev.object);
        if (o !== undefined) settle(o);
      });
      const timer = setTimeout(() => settle(undefined), Math.max(0, deadline - Date.now()));
      void w.ended.then((e) => {
        lastError = e;
        settle(undefined);
      });
    });
    if (result instanceof TrustplaneError) throw result;
    if (typeof result === 'string') return result;
    if (api.isClosed) throw new TrustplaneError('Unavailable', `stopped waiting for certificate signing request ${name}: the agent is stopping`);
    // The watch ended early (server timeout, connection lost): watch again, after a pause if it failed.
    if (lastError && isApiError(lastError, 410)) from = undefined;
    if (lastError && Date.now() < deadline) {
      if (lastError instanceof TrustplaneError && (lastError.reason === 'Unauthorized' || lastError.reason === 'Forbidden')) throw lastError;
      await new Promise((r) => setTimeout(r, Math.min(1000, Math.max(0, deadline - Date.now()))));
    }
  }
  throw new TrustplaneError(
    'Timeout',
    `no ${what} was issued within ${formatDuration(timeoutMs / 1000)}: certificate signing request ${name} is ${stateOf(last)}${lastError ? ` (last watch error: ${(lastError as Error).message})` : ''}`,
    last && conditionOf(last, 'Approved')
      ? `is the CSR signer running, and can the control plane reach the CA service? \`kubectl get csr ${name}\` shows its state`
      : `is the approver running? \`kubectl get csr ${name}\` shows its state; an administrator can approve it with \`kubectl certificate approve ${name}\``,
  );
}

/** The key for the next request: the one a request in flight was made with, else a new P-256 key, saved 0600 first. */
export async function pendingKey(state: NodeState, kind: CredentialKind): Promise<string> {
  const saved = state.readPendingKey(kind);
  if (saved) {
    try {
      createPrivateKey(saved);
      return saved;
    } catch {
      state.removePendingKey(kind);
    }
  }
  const kp = await generateKeyPair({ kind: 'ec', curve: 'P-256' });
  state.writePendingKey(kind, kp.privateKeyPem);
  return kp.privateKeyPem;
}

/** Checks that the chain certifies our key and leads to the cluster CA; returns its leaf. */
export function checkIssued(chainPem: string, spki: Buffer, caBundle: string, purpose: 'clientAuth' | 'serverAuth', clock: Clock, name: string): ParsedCertificate {
  const [leaf, ...rest] = parseCertificates(chainPem);
  if (!leaf.publicKey.equals(spki)) throw new TrustplaneError('Internal', `the certificate issued for ${name} certifies another key than the one the request was made with`);
  // Chained at a time inside the certificate's validity, so a few seconds of clock skew with the CA do not matter here.
  const now = clock.now();
  const at = now < leaf.notBefore ? leaf.notBefore : now;
  try {
    verifyChain(leaf, rest, parseCertificates(caBundle), { at, purpose });
  } catch (e) {
    throw new TrustplaneError('Unauthorized', `the certificate issued for ${name} does not chain to the cluster CA: ${(e as Error).message}`, 'the cluster CA may have been rotated: join again');
  }
  return leaf;
}

/**
 * Gets a certificate of `spec.kind` for the node, authenticated as the API client is (bootstrap token or the current
 * client certificate). Writes it with its key to the node data dir and returns it. The key never leaves this machine.
 */
export async function requestCertificate(spec: CertificateRequestSpec, o: RequestOptions): Promise<IssuedCredential> {
  const s = SIGNERS[spec.kind];
  for (let attempt = 0; ; attempt++) {
    const keyPem = await pendingKey(o.state, spec.kind);
    const signer = softSigner(createPrivateKey(keyPem));
    const name = csrNameFor(signer.publicKey, spec);
    const der = await buildCsr({
      subject: [
        { type: 'O', value: GROUP_NODES },
        { type: 'CN', value: `${NODE_USER_PREFIX}${spec.nodeName}` },
      ],
      sans: spec.sans,
      signer,
    });
    const body = {
      apiVersion: 'certificates.k8s.io/v1',
      kind: 'CertificateSigningRequest',
      metadata: { name },
      spec: {
        request: Buffer.from(pemEncode('CERTIFICATE REQUEST', der)).toString('base64'),
        signerName: s.signerName,
        usages: s.usages,
        ...(spec.expirationSeconds ? { expirationSeconds: spec.expirationSeconds } : {}),
      },
    };
    // A request made before a restart is found again by its name; only our own requests are visible to us.
    let existing: CertificateSigningRequest | undefined;
    try {
      existing = await o.api.get<CertificateSigningRequest>(`${CSR_PATH}/${name}`);
      if (!parseCsr(Buffer.from(existing.spec.request, 'base64').toString('latin1')).publicKey.equals(signer.publicKey)) existing = undefined;
    } catch (e) {
      if (!isApiError(e, 404) && !isApiError(e, 403)) throw e;
    }
    if (!existing) {
      try {
        existing = await o.api.post<CertificateSigningRequest>(CSR_PATH, body);
        o.log.info({ csr: name, signer: s.signerName, via: o.api.mode }, `requested a ${s.what}`);
      } catch (e) {
        if (isApiError(e, 409) && attempt === 0) {
          // Someone else's request by that name, or one we can no longer read: start over with a new key.
          o.state.removePendingKey(spec.kind);
          continue;
        }
        throw e;
      }
    } else o.log.info({ csr: name }, `waiting again on the ${s.what} request made before`);

    let chain: string;
    try {
      chain = await waitForCertificate(o.api, name, o.timeoutMs, `${s.what} for node ${spec.nodeName}`, existing, (note) =>
        o.log.warn({ csr: name, note }, `the ${s.what} is approved but not issued yet: ${note}`),
      );
    } catch (e) {
      // A decided request stays decided; the next attempt must be a new request, with a new key.
      if (e instanceof TrustplaneError && (e.reason === 'Forbidden' || e.reason === 'NotFound')) o.state.removePendingKey(spec.kind);
      throw e;
    }
    const leaf = checkIssued(chain, signer.publicKey, o.caBundle, s.purpose, o.clock, `CSR ${name}`);
    o.state.writeCredential(spec.kind, chain, keyPem);
    o.state.removePendingKey(spec.kind);
    o.log.info({ csr: name, serial: leaf.serialHex, notAfter: leaf.notAfter.toISOString() }, `${s.what} issued`);
    return { cert: chain, key: keyPem, leaf, csrName: name };
  }
}
