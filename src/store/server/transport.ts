// The TLS listener in front of gRPC: trustplane's TLS policy with client certificates required, sockets handed to grpc-js.
import type { Socket } from 'node:net';
import { X509Certificate } from 'node:crypto';
import { createServer, type TLSSocket } from 'node:tls';
import { pemDecodeAll } from '../../pki/pem.js';
import { parseCertificate } from '../../pki/certificate.js';
import { clientIdentityOf, plainAddress, type ClientIdentity, type ObservedClients } from '../../tls/observed-clients.js';
import { ListenerGuard, type ConnectionLimits } from '../../tls/listener-guard.js';
import { serverOptions, type MinVersion } from '../../tls/policy.js';
import { TrustplaneError } from '../../util/errors.js';

export interface TlsMaterial {
  cert: string;
  key: string;
  ca: string;
  minVersion?: MinVersion;
}

export interface TlsListener {
  port: number;
  /**
   * New serving certificate and client CA (a rotation of the etcd API CA) for new connections; open connections whose
   * client certificate the new CA does not vouch for are closed, so a retired generation's certificates stop working.
   */
  setTls(tls: TlsMaterial): void;
  /** Stops accepting and destroys every open connection. */
  close(): Promise<void>;
}

/** How often the open connections' sightings are renewed. */
const OBSERVE_OPEN_MS = 10_000;

function identityOf(socket: TLSSocket): ClientIdentity | undefined {
  const der = socket.getPeerCertificate()?.raw;
  if (!der) return undefined;
  try {
    return clientIdentityOf(parseCertificate(der));
  } catch {
    return undefined;
  }
}

/**
 * grpc-js's own TLS credentials cannot carry the project's TLS policy (minimum version, suites, no tickets), so
 * TLS ends here and each authenticated socket is injected into grpc-js as an HTTP/2 connection. A client without
 * a certificate from `ca` fails the handshake and never reaches gRPC.
 */
export function listenTls(
  where: { host: string; port: number },
  tls: TlsMaterial,
  onSecure: (socket: TLSSocket) => void,
  limits?: ConnectionLimits,
  /** Records each client's user and issuing CA key (observed clients): at connect, while open, at close. */
  observed?: ObservedClients,
): Promise<TlsListener> {
  const sockets = new Set<Socket>();
  const secure = new Set<TLSSocket>();
  // gRPC owns the connection once injected, so requests are not seen one by one: an open connection presents its
  // certificate for as long as it is open.
  const presented = new Map<TLSSocket, { identity: ClientIdentity; address: string }>();
  const observe = (s: TLSSocket) => {
    const p = presented.get(s);
    if (p) observed!.see(p.identity, 'etcd', p.address, Date.now());
  };
  const refresh = observed ? setInterval(() => presented.forEach((_p, s) => observe(s)), OBSERVE_OPEN_MS) : undefined;
  refresh?.unref();
  // Handshakes have a deadline and connections a cap, so clients that never finish cannot hold the process's descriptors.
  const guard = new ListenerGuard({ name: `store (etcd v3 API) on ${where.host}`, limits, tls: true, requests: 'none' });
  const server = createServer({ ...serverOptions({ ...tls, clientCert: 'require' }), ALPNProtocols: ['h2'], handshakeTimeout: guard.limits.handshakeTimeoutMs }, (socket) => {
    secure.add(socket);
    socket.once('close', () => secure.delete(socket));
    if (observed) {
      const identity = identityOf(socket);
      if (identity) {
        presented.set(socket, { identity, address: plainAddress(socket.remoteAddress) });
        observe(socket);
        socket.once('close', () => {
          observe(socket);
          presented.delete(socket);
          // A client that reconnected with new credentials closes its old connections after: its open ones are seen
          // again, so that their sighting stays the latest.
          presented.forEach((p, s) => p.identity.user === identity.user && observe(s));
        });
      }
    }
    onSecure(socket);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  // Failed handshakes (no certificate, wrong CA, old protocol) are the client's problem; the guard destroys them.
  guard.attach(server);
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        e.code === 'EADDRINUSE'
          ? new TrustplaneError('Conflict', `${where.host}:${where.port} is already in use`, 'choose another port, or 0 to pick a free one')
          : e,
      ),
    );
    server.listen(where.port, where.host, () => {
      server.removeAllListeners('error');
      server.on('error', () => undefined);
      const addr = server.address();
      const port = typeof addr === 'object' && addr ? addr.port : where.port;
      resolve({
        port,
        setTls(next: TlsMaterial) {
          server.setSecureContext(serverOptions({ ...next, clientCert: 'require' }));
          const cas = pemDecodeAll(next.ca, 'CERTIFICATE').map((der) => new X509Certificate(der));
          for (const s of secure) {
            const peer = s.getPeerX509Certificate();
            if (peer && !cas.some((ca) => peer.verify(ca.publicKey))) s.destroy();
          }
        },
        close: () =>
          new Promise<void>((done) => {
            if (refresh) clearInterval(refresh);
            server.close(() => done());
            for (const s of sockets) s.destroy();
          }),
      });
    });
  });
}
