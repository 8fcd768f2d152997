// The fleet API's typed client (the CLI's way to the control plane host).
import { H2JsonClient, type H2JsonClientOptions } from '../tls/h2-json.js';
import {
  fleetPaths as p,
  type BootstrapTokenRequest,
  type BootstrapTokenResponse,
  type CreateClusterRequest,
  type Credentials,
  type FleetCluster,
  type NodePool,
  type EnrollRequest,
  type Enrollment,
  type CredentialLifetime,
  type UpdateClusterRequest,
} from './api.js';
import type { RevocationResult } from './revocation.js';

export class FleetClient extends H2JsonClient {
  constructor(o: H2JsonClientOptions) {
    super(o, { name: 'control plane host', hint: 'is the control plane host (`trustplane serve`, or `trustplane up`) running for this data dir?' });
  }
  list() {
    return this.request<{ clusters: FleetCluster[] }>('GET', p.clusters()).then((r) => r.clusters);
  }
  create(req: CreateClusterRequest) {
    return this.request<FleetCluster>('POST', p.clusters(), req, 120_000);
  }
  describe(name: string) {
    return this.request<FleetCluster>('GET', p.cluster(name));
  }
  /** Rotation steps wait for the CA service and re-issue certificates: allow them time. */
  update(name: string, req: UpdateClusterRequest) {
    return this.request<FleetCluster>('PATCH', p.cluster(name), req, 120_000);
  }
  revokeNode(cluster: string, node: string) {
    return this.request<RevocationResult>('POST', p.revocation(cluster, node), {});
  }
  lifetime(name: string) {
    return this.request<CredentialLifetime>('GET', p.lifetime(name));
  }
  delete(name: string) {
    return this.request<{ deleted: string }>('DELETE', p.cluster(name), undefined, 120_000);
  }
  credentials(name: string, req: { csr: string; username?: string }) {
    return this.request<Credentials>('POST', p.credentials(name), req);
  }
  listPools(cluster: string) {
    return this.request<{ nodePools: NodePool[] }>('GET', p.nodePools(cluster)).then((r) => r.nodePools);
  }
  createPool(cluster: string, name: string, serving: { allowedCidrs?: string[]; dnsSuffixes?: string[] } = {}, shielded?: { pcrs: number[]; ekCaBundle?: string }) {
    return this.request<NodePool>('POST', p.nodePools(cluster), { name, ...serving, ...(shielded ? { shielded } : {}) });
  }
  enrollNode(cluster: string, pool: string, req: EnrollRequest) {
    return this.request<Enrollment>('POST', p.enrollments(cluster, pool), req);
  }
  listEnrollments(cluster: string, pool: string) {
    return this.request<{ enrollments: Enrollment[] }>('GET', p.enrollments(cluster, pool)).then((r) => r.enrollments);
  }
  unenrollNode(cluster: string, pool: string, node: string) {
    return this.request<{ deleted: boolean }>('DELETE', p.enrollment(cluster, pool, node));
  }
  updatePool(cluster: string, name: string, serving: { allowedCidrs?: string[]; dnsSuffixes?: string[] }) {
    return this.request<NodePool>('PUT', p.nodePool(cluster, name), serving);
  }
  deletePool(cluster: string, name: string) {
    return this.request<{ deleted: string; tokensDeleted: number }>('DELETE', p.nodePool(cluster, name));
  }
  bootstrapToken(cluster: string, pool: string, req: BootstrapTokenRequest) {
    return this.request<BootstrapTokenResponse>('POST', p.bootstrapTokens(cluster, pool), req);
  }
}
