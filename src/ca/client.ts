// The typed client of the CA service: one kept-alive HTTP/2 mTLS session, errors back as TrustplaneError.
import { H2JsonClient, type H2JsonClientOptions } from '../tls/h2-json.js';
import { paths, type BatchResult, type ClusterView, type CreateClusterBody, type IssuedCertificate, type SignInput } from './api.js';
import type { AuthorityKind } from './authority.js';
import type { ClientSighting } from '../tls/observed-clients.js';

export type CaClientOptions = H2JsonClientOptions;

export class CaClient extends H2JsonClient {
  constructor(o: CaClientOptions) {
    super(o, { name: 'CA service', hint: 'is the CA service (`trustplane ca serve`, or `trustplane up`) running for this data dir, and does this caller hold a certificate it issued?' });
  }

  service() {
    return this.request<{ serviceCa: string; caller: { role: string; name: string; cluster?: string } }>('GET', paths.service());
  }
  listClusters() {
    return this.request<{ clusters: ClusterView[] }>('GET', paths.clusters()).then((r) => r.clusters);
  }
  createCluster(body: CreateClusterBody) {
    return this.request<ClusterView>('POST', paths.clusters(), body);
  }
  describeCluster(name: string) {
    return this.request<ClusterView>('GET', paths.cluster(name));
  }
  /** The CA service's callers seen for the cluster (observed clients; fleet callers only). */
  observedClients(cluster: string) {
    return this.request<{ clients: ClientSighting[] }>('GET', `${paths.cluster(cluster)}/observed-clients`).then((r) => r.clients);
  }
  deleteCluster(name: string) {
    return this.request<{ deleted: string }>('DELETE', paths.cluster(name));
  }
  sign(cluster: string, req: SignInput & { csr: string }) {
    return this.request<IssuedCertificate>('POST', paths.sign(cluster), req);
  }
  signBatch(cluster: string, requests: Array<SignInput & { csr: string }>) {
    return this.request<{ results: BatchResult[] }>('POST', paths.signBatch(cluster), { requests }).then((r) => r.results);
  }
  issueClusterCaller(cluster: string, csr: string) {
    return this.request<IssuedCertificate>('POST', paths.clusterCallers(cluster), { csr });
  }
  /** A serving certificate from the service CA for another control plane service (the host's fleet API). */
  issueServiceServer(csr: string, names: { dns: string[]; ip: string[] }) {
    return this.request<IssuedCertificate>('POST', paths.serviceServers(), { csr, ...names });
  }
  issueFleetCaller(name: string, csr: string) {
    return this.request<IssuedCertificate>('POST', paths.fleetCallers(), { name, csr });
  }
  prepareGeneration(cluster: string, kind: AuthorityKind) {
    return this.request<ClusterView>('POST', paths.generations(cluster, kind));
  }
  activateGeneration(cluster: string, kind: AuthorityKind, n: number) {
    return this.request<ClusterView>('POST', paths.generationOp(cluster, kind, n, 'activate'));
  }
  retireGeneration(cluster: string, kind: AuthorityKind, n: number) {
    return this.request<ClusterView>('POST', paths.generationOp(cluster, kind, n, 'retire'));
  }
}
