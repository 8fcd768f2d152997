// The fleet API's wire contract (cluster lifecycle on the control plane host): paths and bodies shared by server and client.
import type { AuthorityView } from '../ca/service.js';
import type { KeyAlgorithm } from '../pki/types.js';
import type { AuthorityKind } from '../ca/authority.js';
import type { AuthorityLifetime } from './lifetime.js';
import type { RotationRecord } from './rotation.js';
import type { ObservedClient } from './observed-clients.js';

export type { ObservedClient } from './observed-clients.js';

/** A daily window, in UTC, for optional automatic work: "HH:MM" and a length in hours. */
export interface MaintenanceWindow {
  start: string;
  hours: number;
}

export interface UpdateClusterRequest {
  startCredentialRotation?: boolean;
  completeCredentialRotation?: boolean;
  /** With completeCredentialRotation: complete although some nodes still hold only old credentials. */
  force?: boolean;
  /** Which authority (default the cluster root CA; the etcd CAs are managed and refused). */
  authority?: AuthorityKind;
  /** Set the maintenance window; null clears it. */
  maintenanceWindow?: MaintenanceWindow | null;
}

export interface CredentialLifetime {
  cluster: string;
  status: ClusterStatus;
  statusMessage: string;
  now: string;
  authorities: AuthorityLifetime[];
  rotation?: RotationRecord;
  /** While a rotation waits in phase moving: what it waits for (nodes for the cluster root CA, etcd members for the etcd CAs). */
  waitingFor?: string[];
  /**
   * While a rotation runs: every client (node, admin user, component, etcd client) a server saw presenting the old
   * generation within the last observedWindowSeconds and not on the new one since, most recently seen first. Empty
   * when no rotation runs. A manual completion is refused while any is listed, unless forced.
   */
  observedClients?: ObservedClient[];
  /** How far back observedClients looks (the host's --observed-window). */
  observedWindowSeconds?: number;
  maintenanceWindow?: MaintenanceWindow;
}

/** Where a cluster's state lives. */
export type StoreBackend =
  /** The embedded etcd v3 store over SQLite, served by the host on loopback. */
  | { type: 'embedded'; port?: number }
  /** A real etcd cluster: trustplane holds a client certificate from the cluster's etcd API CA. */
  | { type: 'etcd'; endpoints: string[] };

export interface CreateClusterRequest {
  name: string;
  keyAlgorithm?: KeyAlgorithm;
  lifetimes?: Partial<Record<AuthorityKind, number>>;
  store?: StoreBackend;
  /** Name of the node pool created with the cluster; default "default-pool". */
  defaultPool?: string;
  maintenanceWindow?: MaintenanceWindow;
}

/**
 * PROVISIONING: being created or its state store is not reachable yet; RUNNING; RECONCILING: a rotation is in
 * progress; DEGRADED: serving, but something needs the operator (statusMessage says what); STOPPING: being deleted;
 * ERROR: not serving (statusMessage says why).
 */
export type ClusterStatus = 'PROVISIONING' | 'RUNNING' | 'RECONCILING' | 'DEGRADED' | 'STOPPING' | 'ERROR';

export interface NodePool {
  name: string;
  createdAt: string;
  /** IP ranges (CIDR) its nodes' serving certificates may name beyond the address a node connects from; none by default. */
  allowedCidrs?: string[];
  /** DNS suffixes: node N may also be certified for N.<suffix>; none by default. */
  dnsSuffixes?: string[];
  /** A shielded pool: its nodes join by TPM attestation of an enrolled EK (no bootstrap tokens), quoting these PCRs. */
  shielded?: { pcrs: number[]; ekCaBundle?: string };
}

export interface EnrollRequest {
  nodeName: string;
  /** PEM public key of the node's TPM endorsement key (`trustplane node tpm ek`). */
  ekPublic: string;
  /** Expected SHA-256 PCR values, index → hex; when absent, the node's first attestation pins them. */
  pcrValues?: Record<string, string>;
  /** Replace an enrollment the node has. */
  replace?: boolean;
}

export interface Enrollment {
  cluster: string;
  pool: string;
  nodeName: string;
  ekFingerprint: string;
  enrolledAt: string;
  pcrs: number[];
  pcrValuesFrom: 'enrollment' | 'first-attestation' | 'pending-first-attestation';
  enrolledBy: 'operator' | 'ek-certificate';
}

export interface FleetCluster {
  name: string;
  uid: string;
  createdAt: string;
  status: ClusterStatus;
  statusMessage: string;
  /** The API server's URL (empty until it serves). */
  endpoint: string;
  store: { type: StoreBackend['type']; endpoints: string[] };
  /** kubeadm's pin of the active cluster root CA: sha256 over its SubjectPublicKeyInfo. */
  caCertHash: string;
  authorities: AuthorityView[];
  nodePools: NodePool[];
  /** The current or last credential rotation. */
  rotation?: RotationRecord;
  /** As in CredentialLifetime: clients seen presenting the old generation while a rotation runs; empty otherwise. */
  observedClients?: ObservedClient[];
  observedWindowSeconds?: number;
  maintenanceWindow?: MaintenanceWindow;
}

export interface CredentialsRequest {
  /** PEM CSR made where the key stays (the CLI). Its subject is ignored. */
  csr: string;
  /** The Kubernetes user name; default "admin". Always in system:masters. */
  username?: string;
}

export interface Credentials {
  cluster: string;
  server: string;
  /** PEM: the cluster root CA bundle. */
  caBundle: string;
  /** PEM: the client certificate and any intermediates. */
  certificate: string;
  notAfter: string;
  username: string;
}

export interface BootstrapTokenRequest {
  ttlSeconds?: number;
  /** Bind the token to one node name; it is then spent by its first CSR. */
  nodeName?: string;
}

export interface BootstrapTokenResponse {
  cluster: string;
  pool: string;
  id: string;
  token: string;
  expiresAt: string;
  server: string;
  caCertHash: string;
  nodeName?: string;
  joinCommand: string;
}

export const DEFAULT_POOL = 'default-pool';
export const DEFAULT_TOKEN_TTL_S = 24 * 3600;
export const MAX_BODY_BYTES = 1024 * 1024;

const e = encodeURIComponent;
export const fleetPaths = {
  clusters: () => '/v1/clusters',
  cluster: (c: string) => `/v1/clusters/${e(c)}`,
  credentials: (c: string) => `/v1/clusters/${e(c)}/credentials`,
  nodePools: (c: string) => `/v1/clusters/${e(c)}/node-pools`,
  nodePool: (c: string, p: string) => `/v1/clusters/${e(c)}/node-pools/${e(p)}`,
  bootstrapTokens: (c: string, p: string) => `/v1/clusters/${e(c)}/node-pools/${e(p)}/bootstrap-tokens`,
  enrollments: (c: string, p: string) => `/v1/clusters/${e(c)}/node-pools/${e(p)}/enrollments`,
  enrollment: (c: string, p: string, n: string) => `/v1/clusters/${e(c)}/node-pools/${e(p)}/enrollments/${e(n)}`,
  lifetime: (c: string) => `/v1/clusters/${e(c)}/lifetime`,
  revocation: (c: string, n: string) => `/v1/clusters/${e(c)}/nodes/${e(n)}/revocation`,
};
