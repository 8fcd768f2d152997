// The typed client of the CA service: one kept-alive HTTP/2 mTLS session, errors back as TrustplaneError.
import http2 from 'node:http2';
import { clientOptions, type MinVersion } from '../tls/policy.js';
import { TrustplaneError, isReason } from '../util/errors.js';
import { paths, type BatchResult, type ClusterView, type CreateClusterBody, type ErrorBody, type IssuedCertificate, type SignInput } from './api.js';
import type { AuthorityKind } from './authority.js';

export interface CaClientOptions {
  url: string;
  /** The caller's certificate and key (PEM), issued by the CA service. */
  cert: string;
  key: string;
  /** The CA service's own CA (PEM). */
  ca: string;
  minVersion?: MinVersion;
  timeoutMs?: number;
}

export class CaClient {
  private session: http2.ClientHttp2Session | undefined;

  constructor(private readonly o: CaClientOptions) {}

  private connect(): http2.ClientHttp2Session {
    if (this.session && !this.session.closed && !this.session.destroyed) return this.session;
    const s = http2.connect(this.o.url, { ...clientOptions({ cert: this.o.cert, key: this.o.key, ca: this.o.ca, minVersion: this.o.minVersion }) });
    s.on('error', () => undefined); // surfaced per request
    s.on('close', () => {
      if (this.session === s) this.session = undefined;
    });
    s.unref();
    this.session = s;
    return s;
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const s = this.connect();
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise<T>((resolve, reject) => {
      const headers: http2.OutgoingHttpHeaders = { ':method': method, ':path': path };
      if (data) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = data.length;
      }
      let req: http2.ClientHttp2Stream;
      try {
        req = s.request(headers);
      } catch (e) {
        reject(new TrustplaneError('Unavailable', `CA service at ${this.o.url}: ${(e as Error).message}`));
        return;
      }
      s.ref();
      const timer = setTimeout(() => req.close(http2.constants.NGHTTP2_CANCEL), this.o.timeoutMs ?? 30000);
      let status = 0;
      const chunks: Buffer[] = [];
      req.on('response', (h) => (status = Number(h[':status'])));
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('error', (e) => {
        clearTimeout(timer);
        reject(new TrustplaneError('Unavailable', `CA service at ${this.o.url} is unreachable: ${e.message}`, 'is `trustplane ca serve` running for this data dir?'));
      });
      req.on('close', () => {
        clearTimeout(timer);
        if (this.session) this.session.unref();
        if (status === 0) {
          reject(new TrustplaneError('Unavailable', `CA service at ${this.o.url} gave no answer (connection refused or credentials rejected)`, 'check that the CA service is running and that this caller holds a certificate it issued'));
          return;
        }
        let parsed: unknown;
        try {
          parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          reject(new TrustplaneError('Internal', `CA service answered ${status} with a body that is not JSON`));
          return;
        }
        if (status >= 400) {
          const e = (parsed as ErrorBody).error ?? { reason: 'Internal', message: `status ${status}` };
          reject(new TrustplaneError(isReason(e.reason) ? e.reason : 'Internal', e.message, e.hint));
        } else resolve(parsed as T);
      });
      req.end(data);
    });
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

  close(): void {
    this.session?.close();
    this.session = undefined;
  }
}
