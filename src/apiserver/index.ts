// The per-cluster API server: HTTPS on loopback with client-certificate or bootstrap-token authentication, state in the store.
import type { Agent } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createSecureContext } from 'node:tls';
import type { Store } from '../store/client.js';
import { serverOptions } from '../tls/policy.js';
import { systemClock, type Clock } from '../util/clock.js';
import { invalid } from '../util/errors.js';
import { adapters } from './api/adapters.js';
import { OpenApi } from './api/openapi.js';
import { createHandler } from './api/router.js';
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
  close(): Promise<void>;
}

/** Idle kept-alive connections are closed after this long. */
const KEEP_ALIVE_MS = 65_000;

export async function startApiServer(o: ApiServerOptions): Promise<RunningApiServer> {
  const clock = o.clock ?? systemClock;
  const host = o.host ?? '127.0.0.1';
  const authenticator = new Authenticator(o.clientCa, o.store, clock, o.isRevoked);
  const material = { cert: o.tls.cert, key: o.tls.key, ca: o.clientCa, minVersion: o.tls.minVersion };
  const tlsOptions = () => serverOptions({ ...material, clientCert: 'request' });
  // Fails here, with the reason, rather than on the first handshake.
  createSecureContext(tlsOptions());

  const watches = new Set<() => void>();
  let port = 0;
  const handler = createHandler({
    cluster: o.cluster,
    clock,
    authenticator,
    adapters: adapters(o.store, o.registries ?? createRegistries(o.store, clock)),
    openapi: new OpenApi(),
    maxBodyBytes: o.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    serverAddress: () => `${host.includes(':') ? `[${host}]` : host}:${port}`,
    trackWatch(end) {
      watches.add(end);
      return () => watches.delete(end);
    },
    clusterInfo: o.clusterInfo,
    nodeTransport: o.nodeTransport,
  });
  let trustHeader = trustHeaderValue(o.clientCa, o.tls.cert);
  const server: Server = createServer(tlsOptions(), (req, res) => {
    res.setHeader(TRUST_BUNDLE_HEADER, trustHeader);
    handler(req, res);
  });
  server.keepAliveTimeout = KEEP_ALIVE_MS;
  server.headersTimeout = KEEP_ALIVE_MS + 5_000;
  // Handshake failures (old TLS versions, bad certificates) are the client's problem; they must not end the server.
  server.on('tlsClientError', () => {});
  server.on('clientError', (_e, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });

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
    close() {
      closing ??= new Promise<void>((resolve) => {
        authenticator.close();
        for (const end of [...watches]) end();
        server.close(() => resolve());
        server.closeIdleConnections();
        // Requests in flight get a moment to finish; then every connection goes.
        setTimeout(() => server.closeAllConnections(), 2000).unref();
      });
      return closing;
    },
  };
}
