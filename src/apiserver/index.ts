// The per-cluster API server: HTTPS (HTTP/2 and HTTP/1.1 on one port) with client-certificate or bootstrap-token authentication, state in the store.
import type { Agent, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { createSecureContext } from 'node:tls';
import type { Store } from '../store/client.js';
import { ListenerGuard, type ConnectionLimits, type GuardStats } from '../tls/listener-guard.js';
import { serverOptions } from '../tls/policy.js';
import type { ObservedClients } from '../tls/observed-clients.js';
import { systemClock, type Clock } from '../util/clock.js';
import { invalid } from '../util/errors.js';
import { adapters } from './api/adapters.js';
import { OpenApi } from './api/openapi.js';
import { createHandler } from './api/router.js';
import { TpmAttestationEndpoint } from './api/tpm-attestation.js';
import { TRUST_BUNDLE_HEADER, trustHeaderValue, type ClusterInfo } from './api/cluster-info.js';
import { Authenticator, parseTrustBundle } from './auth/authenticate.js';
import { DEFAULT_MAX_BODY_BYTES } from './http/body.js';
import { createRegistries, type Registries } from './registry/registries.js';

export { DEFAULT_MAX_BODY_BYTES } from './http/body.js';
export { CLUSTER_INFO_PATH, KUBECONFIG_KEY, TUNNEL_SERVER_KEY, TRUST_BUNDLE_HEADER, clusterInfoConfigMap, trustBundleDigest, trustHeaderValue, parseTrustHeader, type ClusterInfo } from './api/cluster-info.js';
export * from './types.js';
export { ApiError, toStatus } from './status.js';
export * from './registry/csr.js';
export * from './registry/node.js';
export * from './registry/lease.js';
export { createRegistries, type Registries } from './registry/registries.js';
export type { ListResult, ObjectEvent, ObjectWatch, Preconditions, WriteOptions } from './registry/object-store.js';
export * from './auth/bootstrap-tokens.js';
export { authorize, csrCreateRefusal, nodeNameOf, isAdmin, isBootstrapper, type Decision, type RequestAttributes } from './auth/authorize.js';

export interface ApiServerOptions {
  cluster: string;
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 = a free port. */
  port?: number;
  tls: { cert: string /* PEM leaf + chain */; key: string; minVersion?: 'TLSv1.2' | 'TLSv1.3' };
  /** PEM bundle (the cluster root CA generations) that client certificates must chain to. */
  clientCa: string;
  /** All state lives there; the server keeps none of its own. */
  store: Store;
  /** The registries over `store`, when the caller shares them with its controllers (one watch per resource); else made here. */
  registries?: Registries;
  clock?: Clock;
  /** Largest request body accepted; default DEFAULT_MAX_BODY_BYTES (3 MiB, as kube-apiserver). */
  maxBodyBytes?: number;
  /** What the anonymous kube-public/cluster-info ConfigMap says (read per request); not served when absent. */
  clusterInfo?: () => ClusterInfo;
  /** True for the serial (lower-case hex) of a revoked client certificate: it is refused like an unknown one. */
  isRevoked?: (serialHex: string) => boolean;
  /** Reaches node endpoints through the reverse tunnel (an https.Agent dialling node names), for /api/v1/nodes/NAME/proxy/...; absent: not served. */
  nodeTransport?: () => Agent | undefined;
  /** Handshake and idle timeouts, connection caps; defaults in DEFAULT_CONNECTION_LIMITS. */
  limits?: ConnectionLimits;
  /** Records, per request with an accepted client certificate, its user and issuing CA key (observed clients). */
  observed?: ObservedClients;
  /** Where the listener's rate-limited warnings (a cap biting, handshakes timing out) go; default standard error. */
  log?: (msg: string, fields: Record<string, unknown>) => void;
}

export interface RunningApiServer {
  url: string;
  port: number;
  /** New client trust anchors: connections made from now on are judged by them, open ones on their next request. */
  setClientCa(pem: string): void;
  /** Root CA generations retired by a completed rotation: their certificates are refused with a hint to get new ones. */
  setRetiredCa(pem: string | undefined): void;
  /** isRevoked now answers differently: open connections are judged again on their next request. */
  revocationsChanged(): void;
  /** New serving certificate for new connections, without a restart. */
  setServingCert(c: { cert: string; key: string }): void;
  /** Connections open now, what the listener guard refused or closed, and HTTP/2 sessions opened so far. */
  connectionStats(): GuardStats & { h2Sessions: number };
  close(): Promise<void>;
}

/**
 * Headers that describe one HTTP/1.1 connection (RFC 9113 8.2.2): an HTTP/2 response must not carry them, and node's
 * HTTP/2 layer throws on them, so the handlers (written for both) have them dropped on HTTP/2.
 */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

function withoutHopByHop(headers: OutgoingHttpHeaders | readonly unknown[] | undefined): OutgoingHttpHeaders | readonly unknown[] | undefined {
  if (!headers || Array.isArray(headers)) return headers;
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers as OutgoingHttpHeaders)) if (!HOP_BY_HOP.has(k.toLowerCase())) out[k] = v;
  return out;
}

/** Makes one HTTP/2 compat response ignore connection-specific headers the handlers set for HTTP/1.1. */
function dropHopByHopHeaders(res: http2.Http2ServerResponse): void {
  const setHeader = res.setHeader.bind(res);
  const writeHead = res.writeHead.bind(res) as (code: number, ...rest: unknown[]) => http2.Http2ServerResponse;
  res.setHeader = (name: string, value: number | string | readonly string[]) => (HOP_BY_HOP.has(name.toLowerCase()) ? res : setHeader(name, value));
  res.writeHead = ((code: number, a?: unknown, b?: unknown) =>
    typeof a === 'string' ? writeHead(code, a, withoutHopByHop(b as OutgoingHttpHeaders)) : writeHead(code, withoutHopByHop(a as OutgoingHttpHeaders))) as typeof res.writeHead;
}

/** Audit lines of the TPM attestation endpoint when no log is given: JSON on standard error, the host log. */
function auditToStderr(msg: string, fields: Record<string, unknown>): void {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), msg, ...fields })}\n`);
}

export async function startApiServer(o: ApiServerOptions): Promise<RunningApiServer> {
  const clock = o.clock ?? systemClock;
  const host = o.host ?? '127.0.0.1';
  const authenticator = new Authenticator(o.clientCa, o.store, clock, o.isRevoked, o.observed);
  const material = { cert: o.tls.cert, key: o.tls.key, ca: o.clientCa, minVersion: o.tls.minVersion };
  const tlsOptions = () => serverOptions({ ...material, clientCert: 'request' });
  // Fails here, with the reason, rather than on the first handshake.
  createSecureContext(tlsOptions());

  const watches = new Set<() => void>();
  const registries = o.registries ?? createRegistries(o.store, clock);
  let port = 0;
  const handler = createHandler({
    cluster: o.cluster,
    clock,
    authenticator,
    adapters: adapters(o.store, registries),
    openapi: new OpenApi(),
    maxBodyBytes: o.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    serverAddress: () => `${host.includes(':') ? `[${host}]` : host}:${port}`,
    trackWatch(end) {
      watches.add(end);
      return () => watches.delete(end);
    },
    clusterInfo: o.clusterInfo,
    nodeTransport: o.nodeTransport,
    tpmAttestation: new TpmAttestationEndpoint({ cluster: o.cluster, store: o.store, csrs: registries.csrs, clock, audit: o.log ?? auditToStderr }),
  });
  let trustHeader = trustHeaderValue(o.clientCa, o.tls.cert);
  // Bounded handshakes and idle time, capped connections; handshake failures (old TLS versions, bad certificates) are
  // the client's problem and end only their connection.
  const guard = new ListenerGuard({ name: `API server of cluster ${o.cluster}`, limits: o.limits, tls: true, requests: 'http', log: o.log });
  // HTTP/2 beside HTTP/1.1, as kube-apiserver: ALPN picks h2 for kubectl and Go clients, HTTP/1.1 for the rest. The
  // handlers see node's compat request/response, which has what they use of IncomingMessage/ServerResponse.
  // 100 concurrent streams per connection, kube-apiserver's figure since CVE-2023-44487 (Go's client default too).
  const server = http2.createSecureServer({ ...tlsOptions(), ...guard.serverOptions(), allowHTTP1: true, settings: { maxConcurrentStreams: 100 } }, (req, res) => {
    if (req.httpVersionMajor === 2) dropHopByHopHeaders(res);
    res.setHeader(TRUST_BUNDLE_HEADER, trustHeader);
    handler(req as unknown as IncomingMessage, res as unknown as ServerResponse);
  });
  guard.attach(server);
  const sessions = new Set<http2.ServerHttp2Session>();
  let h2Sessions = 0;
  server.on('session', (s) => {
    h2Sessions++;
    sessions.add(s);
    s.once('close', () => sessions.delete(s));
  });
  // A failed session (a client speaking garbage after the preface) ends only itself.
  server.on('sessionError', () => undefined);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;
  const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;

  let closing: Promise<void> | undefined;
  return {
    url: `https://${urlHost}:${port}`,
    port,
    setClientCa(pem: string) {
      parseTrustBundle(pem);
      const next = { ...material, ca: pem };
      createSecureContext(serverOptions({ ...next, clientCert: 'request' }));
      authenticator.setClientCa(pem);
      material.ca = pem;
      trustHeader = trustHeaderValue(pem, material.cert);
      server.setSecureContext(tlsOptions());
    },
    setRetiredCa(pem: string | undefined) {
      authenticator.setRetiredCa(pem);
    },
    revocationsChanged() {
      authenticator.revocationsChanged();
    },
    setServingCert(c: { cert: string; key: string }) {
      try {
        createSecureContext(serverOptions({ ...material, cert: c.cert, key: c.key, clientCert: 'request' }));
      } catch (e) {
        throw invalid(`the new serving certificate cannot be used: ${(e as Error).message}`);
      }
      material.cert = c.cert;
      material.key = c.key;
      trustHeader = trustHeaderValue(material.ca, c.cert);
      server.setSecureContext(tlsOptions());
    },
    connectionStats() {
      return { ...guard.stats(), h2Sessions };
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        authenticator.close();
        for (const end of [...watches]) end();
        server.close(() => resolve());
        // HTTP/2 clients are told with a GOAWAY; requests in flight get a moment to finish; then every connection goes.
        for (const s of sessions) s.close();
        guard.closeIdle();
        setTimeout(() => guard.destroyAll(), 2000).unref();
      });
      return closing;
    },
  };
}
