// Who may do what: admins everything, bootstrap tokens their own kubelet-client CSRs, nodes their own credentials, Node and Lease;
// every authenticated user reads ClusterTrustBundles.
import { isDeepStrictEqual } from 'node:util';
import { formatName, nodeNameOfUser, nodeOfSubject, type ParsedCsr } from '../../pki/index.js';
import type { ClusterTrustBundle } from '../registry/cluster-trust-bundle.js';
import { SIGNER_KUBELET_CLIENT, SIGNER_KUBELET_SERVING, type CertificateSigningRequest } from '../registry/csr.js';
import { NODE_LEASE_NAMESPACE } from '../registry/lease.js';
import {
  BOOTSTRAP_USER_PREFIX,
  GROUP_BOOTSTRAPPERS,
  GROUP_MASTERS,
  GROUP_NODES,
  type KubeObject,
  type UserInfo,
} from '../types.js';
import { EXTRA_BOUND_NODE } from './bootstrap-tokens.js';

/** `attest` is not a request's verb: it is asked of `signers` in certificates.k8s.io by the ClusterTrustBundle admission. */
export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete' | 'deletecollection' | 'attest';

export interface RequestAttributes {
  verb: Verb;
  group: string;
  resource: string;
  subresource?: string;
  /** The object's name; for create, the name in the body when there is one. */
  name?: string;
  namespace?: string;
}

export type Decision =
  | { allowed: true; /** Set when only some objects may be seen: lists are filtered, gets of others refused. */ filter?: (obj: KubeObject) => boolean }
  | { allowed: false; reason: string };

const allow: Decision = { allowed: true };
const deny = (reason: string): Decision => ({ allowed: false, reason });

export const isAdmin = (u: UserInfo) => u.groups.includes(GROUP_MASTERS);
export const isBootstrapper = (u: UserInfo) => u.name.startsWith(BOOTSTRAP_USER_PREFIX) && u.groups.includes(GROUP_BOOTSTRAPPERS);

/** The node a user is, when it is one by the one node-identity rule: "system:node:<name>" in system:nodes and no other group. */
export function nodeNameOf(u: UserInfo): string | undefined {
  return nodeNameOfUser(u);
}

const ownCsr = (u: UserInfo) => (obj: KubeObject) => (obj as CertificateSigningRequest).spec?.username === u.name;
const named = (name: string) => (obj: KubeObject) => obj.metadata.name === name;
const READ: Verb[] = ['get', 'list', 'watch'];

export function authorize(u: UserInfo, a: RequestAttributes): Decision {
  if (isAdmin(u)) return allow;
  const sub = a.subresource ?? '';

  if (a.group === 'authentication.k8s.io' && a.resource === 'selfsubjectreviews' && a.verb === 'create') return allow;

  // Trust anchors are public (pods mount them; cluster-info gives the root to anyone): any authenticated user reads them.
  // Writing them is an administrator's, and a signer-linked one also needs `attest` on its signer (clusterTrustBundleRefusal).
  if (a.group === 'certificates.k8s.io' && a.resource === 'clustertrustbundles') {
    if (READ.includes(a.verb) && sub === '') return allow;
    return deny('only administrators may create, change or delete cluster trust bundles');
  }

  if (a.group === 'certificates.k8s.io' && a.resource === 'certificatesigningrequests') {
    if (!isBootstrapper(u) && nodeNameOf(u) === undefined) return deny('');
    if (sub !== '') return deny('only administrators may change the approval or status of a certificate signing request');
    if (a.verb === 'create') return allow; // what may be asked for is admitCsrCreate's decision
    if (READ.includes(a.verb)) return { allowed: true, filter: ownCsr(u) };
    return deny(`may only create and read its own certificate signing requests`);
  }

  const node = nodeNameOf(u);
  if (node === undefined) return deny('');

  if (a.group === '' && a.resource === 'nodes') {
    if (sub !== '' && sub !== 'status') return deny('');
    if (a.verb === 'list' || a.verb === 'watch') return { allowed: true, filter: named(node) };
    if (!['get', 'create', 'update', 'patch'].includes(a.verb)) return deny(`node "${node}" may not ${a.verb} Node objects`);
    if (a.name !== node) return deny(`node "${node}" may only ${a.verb} its own Node object`);
    return allow;
  }

  if (a.group === 'coordination.k8s.io' && a.resource === 'leases') {
    if (a.namespace !== NODE_LEASE_NAMESPACE || sub !== '') return deny('');
    if (a.verb === 'list' || a.verb === 'watch') return { allowed: true, filter: named(node) };
    if (!['get', 'create', 'update', 'patch', 'delete'].includes(a.verb)) return deny('');
    if (a.name !== node) return deny(`node "${node}" may only ${a.verb} its own Lease`);
    return allow;
  }

  return deny('');
}

/**
 * What a non-admin may ask to be certified (the admission step after authorize): a bootstrap token only a kubelet client
 * certificate for some node ("system:node:<name>" in system:nodes; the bound name for a single-use token); a node only
 * kubelet client and serving certificates in its own name. Returns the reason for a refusal, or undefined.
 */
export function csrCreateRefusal(u: UserInfo, csr: CertificateSigningRequest, request: ParsedCsr): string | undefined {
  if (isAdmin(u)) return undefined;
  const subject = JSON.stringify(formatName(request.subject));
  const named = nodeOfSubject(request.subject);
  const signer = csr.spec.signerName;

  if (isBootstrapper(u)) {
    if (signer !== SIGNER_KUBELET_CLIENT) return `bootstrap tokens may only request certificates from signer "${SIGNER_KUBELET_CLIENT}", not "${signer}"`;
    if ('problem' in named) return `the CSR subject ${subject} is not "CN=system:node:<node name>, O=system:nodes": ${named.problem}`;
    const bound = u.extra?.[EXTRA_BOUND_NODE]?.[0];
    if (bound !== undefined && named.node !== bound) return `this bootstrap token is bound to node "${bound}"; the CSR subject ${subject} names another node`;
    return undefined;
  }

  const node = nodeNameOf(u);
  if (node !== undefined) {
    if (signer !== SIGNER_KUBELET_CLIENT && signer !== SIGNER_KUBELET_SERVING) {
      return `nodes may only request certificates from signers "${SIGNER_KUBELET_CLIENT}" and "${SIGNER_KUBELET_SERVING}", not "${signer}"`;
    }
    if (!('node' in named) || named.node !== node) return `node "${node}" may only request certificates for "CN=${u.name}, O=${GROUP_NODES}", not for ${subject}`;
    return undefined;
  }
  return 'only administrators, nodes and bootstrap tokens may create certificate signing requests';
}

/** As rbac.IsOnlyMutatingGCFields: the objects differ at most in owner references, finalizers and managed fields. */
function onlyGcFieldsChange(next: KubeObject, current: KubeObject): boolean {
  const strip = (o: KubeObject) => {
    const { ownerReferences: _o, finalizers: _f, managedFields: _m, resourceVersion: _r, ...metadata } = o.metadata;
    return { ...o, metadata };
  };
  return isDeepStrictEqual(strip(next), strip(current));
}

/** As Kubernetes' IsAuthorizedForSignerName: `verb` on `signers` named the signer, or its domain's wildcard "example.com/*". */
export function authorizedForSigner(u: UserInfo, verb: Verb, signerName: string): boolean {
  const on = (name: string) => authorize(u, { verb, group: 'certificates.k8s.io', resource: 'signers', name }).allowed;
  const slash = signerName.indexOf('/');
  return on(signerName) || (slash > 0 && on(`${signerName.slice(0, slash)}/*`));
}

/**
 * The ClusterTrustBundleAttest admission (kube-apiserver's ctbattest plugin), after authorize allowed the write: a bundle
 * linked to a signer may be created or changed only by who may `attest` for that signer, so that nobody who cannot vouch
 * for a signer makes others trust anchors in its name. A change of only owner references or finalizers (garbage
 * collection, storage migration) needs no attest, as upstream's. Returns the reason for a refusal, or undefined.
 */
export function clusterTrustBundleRefusal(u: UserInfo, next: ClusterTrustBundle, current: ClusterTrustBundle | undefined): string | undefined {
  if (current && (current.spec.signerName ?? '') !== (next.spec.signerName ?? '')) return 'changing signerName is forbidden';
  const signer = next.spec.signerName ?? '';
  if (signer === '') return undefined;
  if (current && onlyGcFieldsChange(next, current)) return undefined;
  return authorizedForSigner(u, 'attest', signer) ? undefined : `user not permitted to attest for signerName ${JSON.stringify(signer)}`;
}
