// The CA service's wire contract: paths and bodies shared by its server and its typed client.
import type { KeyAlgorithm } from '../pki/types.js';
import type { AuthorityKind } from './authority.js';
import type { ClusterView, IssuedCertificate, SignInput } from './service.js';

export type { ClusterView, IssuedCertificate, SignInput };

export interface CreateClusterBody {
  name: string;
  keyAlgorithm?: KeyAlgorithm;
  lifetimes?: Partial<Record<AuthorityKind, number>>;
}

export interface SignBatchBody {
  requests: Array<SignInput & { csr: string }>;
}

export type BatchResult = { ok: IssuedCertificate } | { error: ErrorBody['error'] };

import type { ErrorBody } from '../tls/h2-json.js';
export type { ErrorBody };

/** Wire limits: a CSR is refused above 64 KiB by the PKI core; a batch holds at most this many requests. */
export const MAX_BATCH = 1000;
export const MAX_BODY_BYTES = 8 * 1024 * 1024;

export const paths = {
  service: () => '/v1/service',
  clusters: () => '/v1/clusters',
  cluster: (c: string) => `/v1/clusters/${encodeURIComponent(c)}`,
  sign: (c: string) => `/v1/clusters/${encodeURIComponent(c)}/sign`,
  signBatch: (c: string) => `/v1/clusters/${encodeURIComponent(c)}/sign-batch`,
  clusterCallers: (c: string) => `/v1/clusters/${encodeURIComponent(c)}/callers`,
  fleetCallers: () => '/v1/fleet-callers',
  serviceServers: () => '/v1/service-servers',
  generations: (c: string, k: AuthorityKind) => `/v1/clusters/${encodeURIComponent(c)}/authorities/${k}/generations`,
  generationOp: (c: string, k: AuthorityKind, n: number, op: 'activate' | 'retire') =>
    `/v1/clusters/${encodeURIComponent(c)}/authorities/${k}/generations/${n}/${op}`,
};
