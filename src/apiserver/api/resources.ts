// The resources this API server serves, described once for routing, discovery, OpenAPI and tables.
import { CLUSTER_TRUST_BUNDLE_PRINTER, CSR_PRINTER, LEASE_PRINTER, NODE_PRINTER, type Printer } from './tables.js';

export interface SubresourceDef {
  name: string;
  verbs: string[];
}

export interface ResourceDef {
  group: string;
  version: string;
  resource: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames: string[];
  categories?: string[];
  verbs: string[];
  subresources: SubresourceDef[];
  /** Component schema of the kind, in api/schemas.ts. */
  schema?: string;
  printer?: Printer;
}

const RW = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];
const SUB = ['get', 'patch', 'update'];

export const RESOURCES: ResourceDef[] = [
  {
    group: '', version: 'v1', resource: 'nodes', singular: 'node', kind: 'Node', namespaced: false, shortNames: ['no'],
    verbs: RW, subresources: [{ name: 'status', verbs: SUB }], schema: 'io.k8s.api.core.v1.Node', printer: NODE_PRINTER,
  },
  {
    group: 'certificates.k8s.io', version: 'v1', resource: 'certificatesigningrequests', singular: 'certificatesigningrequest',
    kind: 'CertificateSigningRequest', namespaced: false, shortNames: ['csr'], verbs: RW,
    subresources: [{ name: 'approval', verbs: SUB }, { name: 'status', verbs: SUB }],
    schema: 'io.k8s.api.certificates.v1.CertificateSigningRequest', printer: CSR_PRINTER,
  },
  // As Kubernetes 1.33 serves it (beta): cluster-scoped, no short names; the control plane publishes one per signer.
  {
    group: 'certificates.k8s.io', version: 'v1beta1', resource: 'clustertrustbundles', singular: 'clustertrustbundle',
    kind: 'ClusterTrustBundle', namespaced: false, shortNames: [], verbs: RW, subresources: [],
    schema: 'io.k8s.api.certificates.v1beta1.ClusterTrustBundle', printer: CLUSTER_TRUST_BUNDLE_PRINTER,
  },
  {
    group: 'coordination.k8s.io', version: 'v1', resource: 'leases', singular: 'lease', kind: 'Lease', namespaced: true, shortNames: [],
    verbs: RW, subresources: [], schema: 'io.k8s.api.coordination.v1.Lease', printer: LEASE_PRINTER,
  },
  {
    group: 'authentication.k8s.io', version: 'v1', resource: 'selfsubjectreviews', singular: 'selfsubjectreview', kind: 'SelfSubjectReview',
    namespaced: false, shortNames: [], verbs: ['create'], subresources: [], schema: 'io.k8s.api.authentication.v1.SelfSubjectReview',
  },
  // kubectl 1.27 asks `auth whoami` of v1beta1 (v1 came in 1.28): the same review, served under both versions.
  {
    group: 'authentication.k8s.io', version: 'v1beta1', resource: 'selfsubjectreviews', singular: 'selfsubjectreview', kind: 'SelfSubjectReview',
    namespaced: false, shortNames: [], verbs: ['create'], subresources: [],
  },
];

export const GROUPS: Array<{ group: string; version: string }> = [
  { group: '', version: 'v1' },
  { group: 'certificates.k8s.io', version: 'v1' },
  { group: 'certificates.k8s.io', version: 'v1beta1' },
  { group: 'coordination.k8s.io', version: 'v1' },
  { group: 'authentication.k8s.io', version: 'v1' },
  { group: 'authentication.k8s.io', version: 'v1beta1' },
];

export function findResource(group: string, version: string, resource: string): ResourceDef | undefined {
  return RESOURCES.find((r) => r.group === group && r.version === version && r.resource === resource);
}

export const groupVersion = (g: { group: string; version: string }) => (g.group ? `${g.group}/${g.version}` : g.version);
