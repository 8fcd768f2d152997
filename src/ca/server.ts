// The CA service's narrow API: JSON over HTTP/2, mutual TLS, callers identified by certificates the service issued.
import type { TLSSocket } from 'node:tls';
import type { MinVersion } from '../tls/policy.js';
import { parseCertificate } from '../pki/certificate.js';
import { clientIdentityOf, plainAddress, ObservedClients, type ClientIdentity } from '../tls/observed-clients.js';
import { LruMap } from '../util/lru.js';
import { TrustplaneError, forbidden, invalid, notFound } from '../util/errors.js';
import { asObject, errorBody, startH2JsonServer } from '../tls/h2-json.js';
import { MAX_BATCH, MAX_BODY_BYTES, type BatchResult, type CreateClusterBody, type SignBatchBody } from './api.js';
import type { AuditLog } from './audit.js';
import { parseAuthorityKind, type CaService, type CallerIdentity, type SignInput } from './service.js';

export interface CaServerOptions {
  service: CaService;
  audit: AuditLog;
  host: string;
  port: number;
  /** This server's certificate and key (PEM), issued by the service CA. */
  cert: string;
  key: string;
  minVersion?: MinVersion;
}

export interface RunningCaServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Who is calling, from the verified client certificate. */
export function callerFromSubject(subject: Record<string, string | string[] | undefined>): CallerIdentity {
  const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v) ?? '';
  const o = one(subject.O);
  const cn = one(subject.CN);
  if (o === 'trustplane:fleet' && cn.startsWith('fleet:')) return { role: 'fleet', name: cn };
  if (o === 'trustplane:cluster' && cn.startsWith('cluster:')) return { role: 'cluster', name: cn, cluster: cn.slice('cluster:'.length), clusterUid: one(subject.OU) };
  throw forbidden(`client certificate "${cn}" names no caller role of the CA service`);
}

function requireFleet(c: CallerIdentity, what: string) {
  if (c.role !== 'fleet') throw forbidden(`${what} is reserved to the fleet (control plane host); caller ${c.name} may not`);
}

function signInput(v: unknown): SignInput {
  const o = asObject(v, 'sign request');
  if (typeof o.signer !== 'string') throw invalid('sign request needs "signer" (string)');
  if (typeof o.csr !== 'string') throw invalid('sign request needs "csr" (PEM string)');
  if (o.expirationSeconds !== undefined && typeof o.expirationSeconds !== 'number') throw invalid('"expirationSeconds" must be a number');
  if (o.admin !== undefined && typeof o.admin !== 'boolean') throw invalid('"admin" must be a boolean');
  if (o.onBehalfOf !== undefined && typeof o.onBehalfOf !== 'string') throw invalid('"onBehalfOf" must be a string');
  if (o.usages !== undefined && !(Array.isArray(o.usages) && o.usages.every((u) => typeof u === 'string'))) throw invalid('"usages" must be an array of strings');
  return {
    signer: o.signer,
    csr: o.csr,
    expirationSeconds: o.expirationSeconds as number | undefined,
    admin: o.admin as boolean | undefined,
    onBehalfOf: o.onBehalfOf as string | undefined,
    ...(o.usages !== undefined ? { usages: o.usages as string[] } : {}),
  };
}

/**
 * Per cluster, the CA service's callers (user, issuing key, when, where): a cluster's own caller, and fleet callers
 * acting on it. Their certificates come from the service CA, which no cluster rotation replaces; the record says who
 * uses the service for a cluster.
 */
class CallerRecord {
  private readonly clusters = new LruMap<string, ObservedClients>(4096);
  private readonly identities = new WeakMap<TLSSocket, ClientIdentity | null>();

  see(caller: CallerIdentity, socket: TLSSocket, parts: string[]): void {
    const cluster = caller.role === 'cluster' ? caller.cluster : parts[0] === 'v1' && parts[1] === 'clusters' && parts[2] ? decodeURIComponent(parts[2]) : undefined;
    if (!cluster) return;
    let identity = this.identities.get(socket);
    if (identity === undefined) {
      const der = socket.getPeerCertificate?.()?.raw;
      try {
        identity = der ? (clientIdentityOf(parseCertificate(der)) ?? null) : null;
      } catch {
        identity = null;
      }
      this.identities.set(socket, identity);
    }
    if (!identity) return;
    let record = this.clusters.get(cluster);
    if (!record) this.clusters.set(cluster, (record = new ObservedClients({ nodes: 16, others: 256 })));
    record.see(identity, 'ca', plainAddress(socket.remoteAddress), Date.now());
  }

  list(cluster: string) {
    return this.clusters.get(cluster)?.list() ?? [];
  }
}

async function route(svc: CaService, caller: CallerIdentity, method: string, parts: string[], body: () => Promise<unknown>, callers: CallerRecord): Promise<[number, unknown]> {
  // parts: ['v1', ...]
  const [v1, top, name, sub, kindS, gens, genS, op] = parts;
  if (v1 !== 'v1') throw notFound(`no such path`);
  if (top === 'service' && parts.length === 2 && method === 'GET') return [200, { serviceCa: svc.serviceCaPem(), caller }];
  if (top === 'fleet-callers' && parts.length === 2 && method === 'POST') {
    requireFleet(caller, 'issuing fleet credentials');
    const b = asObject(await body(), 'request');
    if (typeof b.csr !== 'string' || typeof b.name !== 'string' || !/^[a-z0-9][-a-z0-9.]{0,62}$/.test(b.name)) throw invalid('needs "csr" (PEM) and "name" (lower-case identifier)');
    return [201, await svc.issueServiceCertificate(b.csr, { role: 'fleet', name: b.name }, caller.name)];
  }
  if (top === 'service-servers' && parts.length === 2 && method === 'POST') {
    requireFleet(caller, 'issuing serving certificates for control plane services');
    const b = asObject(await body(), 'request');
    const names = (v: unknown, what: string) => {
      if (v === undefined) return [];
      if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw invalid(`"${what}" must be an array of strings`);
      return v as string[];
    };
    if (typeof b.csr !== 'string') throw invalid('needs "csr" (PEM)');
    const dns = names(b.dns, 'dns');
    const ip = names(b.ip, 'ip');
    if (dns.length + ip.length === 0) throw invalid('needs at least one name in "dns" or "ip"');
    return [201, await svc.issueServiceCertificate(b.csr, { role: 'server', dns, ip }, caller.name)];
  }
  if (top !== 'clusters') throw notFound('no such path');
  if (parts.length === 2) {
    requireFleet(caller, 'listing and creating clusters');
    if (method === 'GET') return [200, { clusters: svc.listClusters() }];
    if (method === 'POST') {
      const b = asObject(await body(), 'request') as unknown as CreateClusterBody;
      if (typeof b.name !== 'string') throw invalid('needs "name"');
      return [201, await svc.createCluster(b.name, { keyAlgorithm: b.keyAlgorithm, lifetimes: b.lifetimes }, caller.name)];
    }
  }
  const cluster = decodeURIComponent(name ?? '');
  if (parts.length === 4 && sub === 'observed-clients' && method === 'GET') {
    requireFleet(caller, 'reading the observed callers of a cluster');
    return [200, { clients: callers.list(cluster) }];
  }
  if (parts.length === 3) {
    if (method === 'GET') return [200, svc.describeFor(caller, cluster)];
    if (method === 'DELETE') {
      requireFleet(caller, 'deleting a cluster');
      await svc.deleteCluster(cluster, caller.name);
      return [200, { deleted: cluster }];
    }
  }
  if (parts.length === 4 && method === 'POST') {
    if (sub === 'sign') return [200, await svc.sign(caller, cluster, signInput(await body()))];
    if (sub === 'sign-batch') {
      const b = asObject(await body(), 'request') as unknown as SignBatchBody;
      if (!Array.isArray(b.requests) || b.requests.length === 0 || b.requests.length > MAX_BATCH) throw invalid(`"requests" must be an array of 1 to ${MAX_BATCH} sign requests`);
      const inputs = b.requests.map((r) => {
        try {
          return signInput(r);
        } catch (e) {
          return e as TrustplaneError;
        }
      });
      const valid = inputs.filter((x): x is SignInput => !(x instanceof Error));
      const signed = await svc.signMany(caller, cluster, valid);
      let j = 0;
      const results: BatchResult[] = inputs.map((x) => {
        const r = x instanceof Error ? x : signed[j++];
        return r instanceof Error ? errorBody(r, 'CA service').body : { ok: r };
      });
      return [200, { results }];
    }
    if (sub === 'callers') {
      requireFleet(caller, 'issuing cluster caller credentials');
      const b = asObject(await body(), 'request');
      if (typeof b.csr !== 'string') throw invalid('needs "csr" (PEM)');
      return [201, await svc.issueServiceCertificate(b.csr, { role: 'cluster', cluster }, caller.name)];
    }
  }
  if (sub === 'authorities' && method === 'POST') {
    requireFleet(caller, 'changing authority generations');
    const kind = parseAuthorityKind(kindS ?? '');
    if (gens !== 'generations') throw notFound(`no route for ${method} /${parts.join('/')}`);
    if (parts.length === 6) return [200, await svc.prepareGeneration(cluster, kind, caller.name)];
    if (parts.length === 8) {
      const n = Number(genS);
      if (!Number.isInteger(n) || n < 1) throw invalid(`generation "${genS}" is not a positive integer`);
      if (op === 'activate') return [200, await svc.activateGeneration(cluster, kind, n, caller.name)];
      if (op === 'retire') return [200, await svc.retireGeneration(cluster, kind, n, caller.name)];
    }
  }
  throw notFound(`no route for ${method} /${parts.join('/')}`);
}

export function startCaServer(o: CaServerOptions): Promise<RunningCaServer> {
  const callers = new CallerRecord();
  return startH2JsonServer<CallerIdentity>({
    host: o.host,
    port: o.port,
    cert: o.cert,
    key: o.key,
    clientCa: o.service.serviceCaPem(),
    minVersion: o.minVersion,
    maxBodyBytes: MAX_BODY_BYTES,
    service: 'CA service',
    identify: callerFromSubject,
    route: (caller, method, parts, body) => route(o.service, caller, method, parts, body, callers),
    observe: (caller, socket, parts) => callers.see(caller, socket, parts),
    // The decision is on disk before the caller learns of it.
    beforeAnswer: () => o.audit.flush(),
  });
}
