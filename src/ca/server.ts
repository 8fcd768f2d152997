// The CA service's narrow API: JSON over HTTP/2, mutual TLS, callers identified by certificates the service issued.
import http2 from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { serverOptions, type MinVersion } from '../tls/policy.js';
import { TrustplaneError, forbidden, invalid, notFound } from '../util/errors.js';
import { MAX_BATCH, MAX_BODY_BYTES, type BatchResult, type CreateClusterBody, type ErrorBody, type SignBatchBody } from './api.js';
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

const identities = new WeakMap<object, CallerIdentity>();

function identify(req: http2.Http2ServerRequest): CallerIdentity {
  const session = req.stream.session;
  const cached = session && identities.get(session);
  if (cached) return cached;
  const socket = req.socket as TLSSocket;
  // rejectUnauthorized already refused unknown issuers at the handshake; this guards against misconfiguration.
  if (!socket.authorized) throw new TrustplaneError('Unauthorized', 'a client certificate issued by this CA service is required');
  const id = callerFromSubject(socket.getPeerCertificate().subject as unknown as Record<string, string>);
  if (session) identities.set(session, id);
  return id;
}

function readBody(req: http2.Http2ServerRequest): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(new TrustplaneError('RequestEntityTooLarge', `request body exceeds ${MAX_BODY_BYTES} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (size === 0) return resolve({});
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch (e) {
        reject(invalid(`request body is not valid JSON: ${(e as Error).message}`));
      }
    });
    req.on('error', reject);
  });
}

function send(res: http2.Http2ServerResponse, status: number, body: unknown) {
  const data = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': data.length });
  res.end(data);
}

function errorBody(e: unknown): { status: number; body: ErrorBody } {
  if (e instanceof TrustplaneError) return { status: e.httpStatus, body: { error: { reason: e.reason, message: e.message, hint: e.hint } } };
  return { status: 500, body: { error: { reason: 'Internal', message: 'internal error in the CA service (see its log)' } } };
}

function requireFleet(c: CallerIdentity, what: string) {
  if (c.role !== 'fleet') throw forbidden(`${what} is reserved to the fleet (control plane host); caller ${c.name} may not`);
}

function asObject(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid(`${what} must be a JSON object`);
  return v as Record<string, unknown>;
}

function signInput(v: unknown): SignInput {
  const o = asObject(v, 'sign request');
  if (typeof o.signer !== 'string') throw invalid('sign request needs "signer" (string)');
  if (typeof o.csr !== 'string') throw invalid('sign request needs "csr" (PEM string)');
  if (o.expirationSeconds !== undefined && typeof o.expirationSeconds !== 'number') throw invalid('"expirationSeconds" must be a number');
  if (o.admin !== undefined && typeof o.admin !== 'boolean') throw invalid('"admin" must be a boolean');
  if (o.onBehalfOf !== undefined && typeof o.onBehalfOf !== 'string') throw invalid('"onBehalfOf" must be a string');
  return { signer: o.signer, csr: o.csr, expirationSeconds: o.expirationSeconds as number | undefined, admin: o.admin as boolean | undefined, onBehalfOf: o.onBehalfOf as string | undefined };
}

async function route(svc: CaService, caller: CallerIdentity, method: string, parts: string[], body: () => Promise<unknown>): Promise<[number, unknown]> {
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
        return r instanceof Error ? errorBody(r).body : { ok: r };
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
  const server = http2.createSecureServer({
    ...serverOptions({ cert: o.cert, key: o.key, ca: o.service.serviceCaPem(), clientCert: 'require', minVersion: o.minVersion }),
    allowHTTP1: false,
  });
  server.on('request', (req, res) => {
    void (async () => {
      try {
        const caller = identify(req);
        const url = new URL(req.url, 'https://ca.invalid');
        const parts = url.pathname.split('/').filter(Boolean);
        const [status, body] = await route(o.service, caller, req.method, parts, () => readBody(req));
        o.audit.flush(); // the decision is on disk before the caller learns of it
        send(res, status, body);
      } catch (e) {
        o.audit.flush();
        const { status, body } = errorBody(e);
        if (!res.headersSent && !res.stream.destroyed) send(res, status, body);
      }
    })();
  });
  // A TLS failure (no client cert, wrong CA, TLS < 1.2) never reaches a handler; nothing to answer.
  server.on('tlsClientError', () => undefined);
  server.on('sessionError', () => undefined);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      const addr = server.address();
      const port = typeof addr === 'object' && addr ? addr.port : o.port;
      const host = o.host.includes(':') ? `[${o.host}]` : o.host;
      resolve({
        url: `https://${host}:${port}`,
        port,
        close: () =>
          new Promise<void>((res) => {
            for (const s of sessions) s.close();
            server.close(() => res());
            setTimeout(() => {
              for (const s of sessions) s.destroy();
            }, 2000).unref();
          }),
      });
    });
  });
}
