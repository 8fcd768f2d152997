// The CSR approver's policy as one pure function: which kubelet CSRs are approved automatically, and why the rest wait.
//
// Three rules approve; nothing is ever denied automatically. Like Kubernetes' own approver, a request no rule covers is
// left pending for an administrator (`kubectl certificate approve|deny`), with a note saying why; the CSR cleaner removes
// it after 24 hours. Denial is final, and a clear violation today (a second bootstrap for a node that holds a live
// credential) can be legitimate tomorrow (the node's disk was wiped and its old credential revoked), so a person decides.
//
//   bootstrap  kubelet client certificate for node N, asked by a bootstrap token (system:bootstrappers), when N holds no
//              live credential and no other request for N is approved, and, for a single-use token, N is the node it
//              is bound to.
//   renewal    kubelet client certificate for node N, asked by node N itself (system:node:N in system:nodes), unless
//              N's newest credential has been revoked.
//   serving    kubelet serving certificate for node N, asked by node N itself, when every SAN (DNS and IP, at least one,
//              no e-mail or URI) is one the control plane knows for N by itself: DNS N or N.<a DNS suffix of N's pool>,
//              an IP N was seen connecting from (this request, or its recorded CSRs) or inside its pool's allowed ranges.
//              Never what the node wrote (its Node's status.addresses), never the API server's names and addresses or
//              the service network (the CA refuses those too, whoever approved), never another node's name.
//   attested   kubelet client certificate for a shielded node N (its TPM enrolled), created by the TPM attestation
//              endpoint (never by a node or a token) with an attestation record for exactly this CSR and request,
//              for N. A shielded node gets no client certificate any other way: not by a bootstrap token, not by a
//              renewal with its current certificate (every CSR repeats the attestation); a token of a shielded pool
//              is never honoured.
import { canonicalIp, inCidrs, reservedServingSan, type ServingReservations } from '../../ca/profiles.js';
import { EXTRA_SOURCE_ADDRESS } from '../../apiserver/auth/authenticate.js';
import {
  EXTRA_BOUND_NODE,
  EXTRA_TOKEN_CREATED,
  SIGNER_KUBELET_CLIENT,
  SIGNER_KUBELET_SERVING,
  isApproved,
  isBootstrapper,
  isDenied,
  isFailed,
  nodeNameOf,
  type CertificateSigningRequest,
  type Node,
} from '../../apiserver/index.js';
import type { ParsedCsr } from '../../pki/index.js';
import { credentialEntries, liveCredential, type NodeCredential } from '../node-credentials.js';
import { subjectNode } from '../node-identity.js';
import type { NodePoolPolicy } from '../node-pool-policy.js';
import type { AttestationRecord } from '../../tpm/enrollment.js';
import { EXTRA_ATTESTED_NODE, TPM_ATTESTOR_USER } from '../../tpm/protocol.js';

export { canonicalIp };

export const APPROVED_REASON = 'AutoApproved';
/** Annotation the approver puts on a request it leaves for an administrator: why no rule approved it. */
export const APPROVAL_NOTE_ANNOTATION = 'trustplane.io/approval-note';

export type ApprovalRule = 'bootstrap' | 'renewal' | 'serving' | 'attested';

export type ApprovalVerdict =
  | { verdict: 'approve'; rule: ApprovalRule; reason: typeof APPROVED_REASON; message: string }
  /** A kubelet request no rule approves: an administrator decides. */
  | { verdict: 'pending'; rule?: ApprovalRule; message: string }
  /** Not the approver's business: another signer, or already decided. */
  | { verdict: 'ignore'; message: string };

export interface ApprovalFacts {
  csr: Pick<CertificateSigningRequest, 'metadata' | 'spec' | 'status'>;
  /** spec.request, parsed and signature-checked (its subject and SANs), or why it could not be. */
  request: Pick<ParsedCsr, 'subject' | 'sans'> | { error: string };
  /** The credential record of the node named in the request's subject (null: none). */
  credential: NodeCredential | null;
  /** The Node object named in the request's subject (null: not registered). Its status.addresses are the node's own word: never a reason to approve. */
  node: Node | null;
  /**
   * Other CSRs for the same node's kubelet client certificate that are approved and not failed, and either not issued
   * yet or issued a certificate that has not expired: a credential the record may not show yet.
   */
  otherGrants: string[];
  now: Date;
  /** For serving requests: what the control plane knows of the node by itself. */
  serving?: ServingFacts;
  /** For client requests: what makes a node shielded, and the attestation of this request. */
  shielded?: ShieldedFacts;
}

/** Shielded nodes: whose TPM is enrolled, which pools refuse tokens, and the attestation record of the request. */
export interface ShieldedFacts {
  /** The pool the node's TPM is enrolled in; null when the node is not a shielded node. */
  enrolledPool: string | null;
  /** When that enrollment was made (ISO): after a revocation, only a newer enrollment lets the node in again. */
  enrolledAt?: string;
  /** The shielded pool of the requesting bootstrap token (its group system:bootstrappers:<pool>), if it is one. */
  tokenShieldedPool: string | null;
  /** The attestation record of this CSR, when the attestation endpoint wrote one. */
  attestation: AttestationRecord | null;
  /** sha256 of this CSR's spec.request. */
  requestDigest: string;
}

/** What a serving request is judged by: facts the control plane holds, none written by the node. */
export interface ServingFacts {
  /** The node's pool (from its join), with the ranges and suffixes it allows; null when unknown or deleted. */
  pool: NodePoolPolicy | null;
  /** The request's DNS SANs that are the names of other nodes (a Node object or a credential record). */
  otherNodes: string[];
  /** The cluster's reserved names and addresses beyond the defaults (the API server's SANs), when the host gave them. */
  reservations?: ServingReservations;
}

const CLIENT_USAGES = [
  ['digital signature', 'client auth'],
  ['digital signature', 'key encipherment', 'client auth'],
];
const SERVING_USAGES = [
  ['digital signature', 'server auth'],
  ['digital signature', 'key encipherment', 'server auth'],
];

function usagesMatch(given: string[] | undefined, allowed: string[][]): boolean {
  const g = new Set(given ?? []);
  return allowed.some((a) => a.length === g.size && a.every((u) => g.has(u)));
}

const pending = (message: string, rule?: ApprovalRule): ApprovalVerdict => ({ verdict: 'pending', message, ...(rule ? { rule } : {}) });
const approve = (rule: ApprovalRule, message: string): ApprovalVerdict => ({ verdict: 'approve', rule, reason: APPROVED_REASON, message });
const ADMIN = 'an administrator must approve or deny it';

/** Should this CSR be approved automatically? */
export function decideApproval(f: ApprovalFacts): ApprovalVerdict {
  const { csr } = f;
  const spec = csr.spec;
  const signer = spec.signerName;
  if (signer !== SIGNER_KUBELET_CLIENT && signer !== SIGNER_KUBELET_SERVING) return { verdict: 'ignore', message: `signer "${signer}" is not approved automatically` };
  const full = csr as CertificateSigningRequest;
  if (isApproved(full) || isDenied(full)) return { verdict: 'ignore', message: 'already approved or denied' };
  if (isFailed(full)) return { verdict: 'ignore', message: 'already failed' };

  if ('error' in f.request) return pending(`the certificate request cannot be read (${f.request.error}); ${ADMIN}`);
  const request = f.request;
  const subject = subjectNode(request);
  if ('problem' in subject) return pending(`${subject.problem}; ${ADMIN}`);
  const node = subject.node;
  const user = { name: spec.username ?? '', groups: spec.groups ?? [] };
  const requesterNode = nodeNameOf(user);

  if (signer === SIGNER_KUBELET_CLIENT) {
    const sans = request.sans;
    if (sans.dns.length + sans.ip.length + sans.email.length + sans.uri.length > 0) {
      return pending(`a kubelet client certificate carries no subject alternative names; ${ADMIN}`);
    }
    if (!usagesMatch(spec.usages, CLIENT_USAGES)) {
      return pending(`usages ${JSON.stringify(spec.usages ?? [])} are not those of a kubelet client certificate (digital signature, client auth[, key encipherment]); ${ADMIN}`);
    }

    const sh = f.shielded;
    if (user.name === TPM_ATTESTOR_USER) {
      const a = sh?.attestation;
      if (!a) return pending(`no TPM attestation record exists for this request; ${ADMIN}`, 'attested');
      if (a.nodeName !== node || spec.extra?.[EXTRA_ATTESTED_NODE]?.[0] !== node) {
        return pending(`the TPM attestation was for node "${a.nodeName}", not "${node}"; ${ADMIN}`, 'attested');
      }
      if (a.requestDigest !== sh!.requestDigest) return pending(`the request is not the one the TPM attestation was made for; ${ADMIN}`, 'attested');
      if (sh!.enrolledPool === null) return pending(`node "${node}" has no enrolled TPM (any more); ${ADMIN}`, 'attested');
      // A revoked node may have been taken over with its TPM: only an enrollment made after the revocation lets it in.
      const revokedAt = credentialEntries(f.credential).find((e) => e.revokedAt)?.revokedAt;
      if (revokedAt && (!sh!.enrolledAt || Date.parse(sh!.enrolledAt) <= Date.parse(revokedAt))) {
        return pending(
          `the credentials of node "${node}" were revoked at ${revokedAt}; its TPM must be enrolled again after that (\`trustplane node-pools enroll ${sh!.enrolledPool} --replace ...\`) before it is let in; ${ADMIN}`,
          'attested',
        );
      }
      return approve(
        'attested',
        `TPM attestation of node ${node}: EK sha256:${a.ekFingerprint}, AK name ${a.akName}, PCRs ${a.pcrs.join(',')} digest ${a.pcrDigest}, nonce ${a.nonce}`,
      );
    }
    if (sh?.enrolledPool) {
      if (isBootstrapper(user)) {
        return pending(`node "${node}" is a shielded node (pool ${sh.enrolledPool}): it joins by TPM attestation only, never with a bootstrap token (${user.name}); ${ADMIN}`, 'bootstrap');
      }
      return pending(`node "${node}" is a shielded node (pool ${sh.enrolledPool}): every client certificate it gets repeats the TPM attestation, a renewal by ${user.name} is not one; ${ADMIN}`, 'renewal');
    }
    if (isBootstrapper(user) && sh?.tokenShieldedPool) {
      return pending(`bootstrap token ${user.name} is of node pool ${sh.tokenShieldedPool}, a shielded pool whose nodes join by TPM attestation only; ${ADMIN}`, 'bootstrap');
    }

    if (isBootstrapper(user)) {
      const token = user.name.slice('system:bootstrap:'.length);
      const bound = spec.extra?.[EXTRA_BOUND_NODE];
      if (bound !== undefined && (bound.length !== 1 || bound[0] !== node)) {
        return pending(`bootstrap token ${token} is bound to node "${bound.join(', ')}", not "${node}"; ${ADMIN}`, 'bootstrap');
      }
      const live = liveCredential(f.credential, f.now);
      if (live) {
        return pending(`node "${node}" already holds a live client credential (valid until ${live.notAfter}); a bootstrap token may not replace it; ${ADMIN}`, 'bootstrap');
      }
      // After a revocation, the token the node held (perhaps stolen with it) no longer lets it in: only a newer one does.
      const revokedAt = credentialEntries(f.credential).find((e) => e.revokedAt)?.revokedAt;
      const tokenMade = spec.extra?.[EXTRA_TOKEN_CREATED]?.[0];
      if (revokedAt && (!tokenMade || Date.parse(tokenMade) <= Date.parse(revokedAt))) {
        return pending(`the credentials of node "${node}" were revoked at ${revokedAt}; it may join again only with a bootstrap token made after that, and token ${token} is older; ${ADMIN}`, 'bootstrap');
      }
      if (f.otherGrants.length) {
        return pending(`another request for node "${node}" (${f.otherGrants.join(', ')}) is already approved; ${ADMIN}`, 'bootstrap');
      }
      return approve('bootstrap', `bootstrap of node ${node} by token ${token}${bound ? ' (single-use, bound to this node)' : ''}`);
    }

    if (requesterNode !== undefined) {
      if (requesterNode !== node) return pending(`node "${requesterNode}" asked for a certificate for node "${node}"; ${ADMIN}`, 'renewal');
      const newest = credentialEntries(f.credential)[0];
      if (newest?.revokedAt) {
        return pending(`the newest client credential of node "${node}" was revoked at ${newest.revokedAt}; re-join the node with a bootstrap token, or ${ADMIN}`, 'renewal');
      }
      return approve('renewal', `renewal by node ${node} of its own client certificate`);
    }
    return pending(`only bootstrap tokens and the node itself get kubelet client certificates approved automatically; ${ADMIN}`);
  }

  // kubelet-serving
  if (requesterNode === undefined) return pending(`only the node itself gets serving certificates approved automatically; ${ADMIN}`);
  if (requesterNode !== node) return pending(`node "${requesterNode}" asked for a serving certificate for node "${node}"; ${ADMIN}`, 'serving');
  if (!usagesMatch(spec.usages, SERVING_USAGES)) {
    return pending(`usages ${JSON.stringify(spec.usages ?? [])} are not those of a kubelet serving certificate (digital signature, server auth[, key encipherment]); ${ADMIN}`, 'serving');
  }
  const sans = request.sans;
  if (sans.email.length || sans.uri.length) return pending(`a serving certificate may name only DNS names and IP addresses; ${ADMIN}`, 'serving');
  if (sans.dns.length + sans.ip.length === 0) return pending(`a serving certificate needs at least one DNS name or IP address; ${ADMIN}`, 'serving');
  const newest = credentialEntries(f.credential)[0];
  if (newest?.revokedAt) return pending(`the newest client credential of node "${node}" was revoked at ${newest.revokedAt}; ${ADMIN}`, 'serving');
  const facts: ServingFacts = f.serving ?? { pool: null, otherNodes: [] };
  const never = [...sans.dns.map((d) => reservedServingSan('DNS', d, facts.reservations)), ...sans.ip.map((ip) => reservedServingSan('IP', ip, facts.reservations))].filter(
    (r): r is string => r !== undefined,
  );
  if (never.length) return pending(`${never.join('; ')}: never approved for a node (the CA refuses it too); ${ADMIN}`, 'serving');
  if (facts.otherNodes.length) {
    return pending(`${facts.otherNodes.map((d) => `DNS ${d}`).join(', ')} ${facts.otherNodes.length === 1 ? 'is the name' : 'are the names'} of another node; ${ADMIN}`, 'serving');
  }
  const pool = facts.pool;
  const suffixes = pool?.dnsSuffixes ?? [];
  const cidrs = pool?.allowedCidrs ?? [];
  // Where the control plane has seen the node: this request's connection, and the CSRs its credentials came from.
  const seen = new Set(
    [spec.extra?.[EXTRA_SOURCE_ADDRESS]?.[0], ...credentialEntries(f.credential).map((e) => e.address)]
      .filter((a): a is string => !!a)
      .map((a) => canonicalIp(a))
      .filter((a): a is string => a !== undefined),
  );
  const dnsOk = (d: string) => {
    const l = d.toLowerCase();
    return l === node || suffixes.some((s) => l === `${node}.${s}`);
  };
  const ipOk = (ip: string) => {
    const c = canonicalIp(ip);
    return c !== undefined && (seen.has(c) || inCidrs(c, cidrs));
  };
  const unknown = [...sans.dns.filter((d) => !dnsOk(d)).map((d) => `DNS ${d}`), ...sans.ip.filter((ip) => !ipOk(ip)).map((ip) => `IP ${ip}`)];
  if (unknown.length) {
    const where = [
      `its name ${node}${suffixes.length ? ` or ${suffixes.map((s) => `${node}.${s}`).join(', ')}` : ''}`,
      `the address${seen.size === 1 ? '' : 'es'} it was seen connecting from (${[...seen].join(', ') || 'none recorded'})`,
      ...(cidrs.length ? [`its pool's ranges ${cidrs.join(', ')}`] : []),
    ];
    return pending(
      `${unknown.join(', ')} ${unknown.length === 1 ? 'is' : 'are'} not known to the control plane as node "${node}"'s: a serving certificate is approved for ${where.join(', ')}` +
        `${pool ? ` (node pool ${pool.name})` : ''}, never for what the node reports about itself; set the pool's --allowed-cidr / --dns-suffix, or ${ADMIN}`,
      'serving',
    );
  }
  const names = [...sans.dns.map((d) => `DNS ${d}`), ...sans.ip.map((ip) => `IP ${ip}`)].join(', ');
  return approve('serving', `serving certificate of node ${node} for its own addresses ${names}`);
}
