// The control plane side of the reverse tunnel: node agents dial in with mTLS, and the control plane opens streams to them.
import http2 from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createSecureContext, createServer, type PeerCertificate, type Server, type TLSSocket } from 'node:tls';
import { parseCertificate, parseCertificates, verifyChain } from '../pki/index.js';
import type { ParsedCertificate } from '../pki/types.js';
import { ListenerGuard, type ConnectionLimits, type GuardStats } from '../tls/listener-guard.js';
import { serverOptions, type MinVersion } from '../tls/policy.js';
import { systemClock, type Clock } from '../util/clock.js';
import { TrustplaneError, invalid } from '../util/errors.js';
import { clientIdentityOf, plainAddress, type ClientIdentity, type ObservedClients } from '../tls/observed-clients.js';
import { describeSubject, nodeNameOf } from './identity.js';
import {
  ALPN,
  CONNECTION_WINDOW,
  DEFAULT_KEEPALIVE,
  GOAWAY,
  MAX_SESSION_MEMORY_MB,
  SETTINGS,
  STREAM_AUTHORITY,
  WELCOME,
  keepSessionAlive,
  type Keepalive,
} from './protocol.js';
import { TappedStream, type TapDirection } from './tap.js';

export interface TunnelServerOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 (the default) = a free port. */
  port?: number;
  tls: {
    /** Serving certificate (PEM, leaf first) from the cluster root CA. */
    cert: string;
    key: string;
    /** Trust anchors agent client certificates must chain to (the cluster root CA generations). */
    clientCa: string;
    minVersion?: MinVersion;
  };
  /** The node a verified client certificate speaks for, or null to refuse it. Default: CN system:node:<name>, O system:nodes. */
  identify?: (peer: PeerCertificate) => string | null;
  /** Consulted on every connection (and again when the client CA changes): true refuses the certificate. */
  isRevoked?: (nodeName: string, serialHex: string) => boolean;
  /** Sees every chunk relayed on every dialled stream. For tests and debugging; it adds one stream hop per chunk. */
  onTap?: (node: string, streamId: number, direction: TapDirection, chunk: Buffer) => void;
  log?: (msg: string, fields?: object) => void;
  /** PINGs that find dead agent connections. Default every 20 s, 10 s to answer. */
  keepalive?: Keepalive;
  /** How long an agent may take over its TLS handshake (a deadline). Default 10 s; overrides limits.handshakeTimeoutMs. */
  handshakeTimeoutMs?: number;
  /** Connection caps and the handshake deadline; defaults in DEFAULT_CONNECTION_LIMITS. */
  limits?: ConnectionLimits;
  /** What certificate expiry and chain checks read as now. */
  clock?: Clock;
  /** Records each connected agent's user and issuing CA key (observed clients): at connect, while open, at close. */
  observed?: ObservedClients;
}

export interface TunnelServer {
  /** https://host:port, for agents. */
  url: string;
  port: number;
  /** A new byte stream to the node's endpoint. Rejects Unavailable when the node has no tunnel, Timeout when it does not answer. */
  dial(nodeName: string, o?: { timeoutMs?: number }): Promise<Duplex>;
  connectedNodes(): string[];
  isConnected(node: string): boolean;
  /** Resolves once the node is connected; rejects Timeout after `timeoutMs`. */
  waitFor(node: string, timeoutMs: number): Promise<void>;
  /** Drops the node's connection and its streams now. The agent will dial again (with backoff); refuse it with isRevoked to keep it out. */
  disconnect(node: string): void;
  /** New trust anchors for agents: new connections are verified against them, and connected agents are judged again now. */
  setClientCa(pem: string): void;
  /** New serving certificate for new connections. */
  setServingCert(c: { cert: string; key: string }): void;
  stats(): { agents: number; streams: number };
  /** Connections open now (agents and handshakes in progress) and what the listener guard refused or closed. */
  connectionStats(): GuardStats;
  close(): Promise<void>;
}

/** One connected agent. */
interface AgentLink {
  node: string;
  socket: TLSSocket;
  session: http2.ClientHttp2Session;
  /** The client certificate's chain as presented (leaf first), to judge it again when the client CA changes. */
  chain: Buffer[];
  serialHex: string;
  notAfter: Date;
  streams: Set<http2.ClientHttp2Stream>;
  stop: () => void;
  /** For the record of observed clients. */
  identity?: ClientIdentity;
  address: string;
}

const DEFAULT_DIAL_TIMEOUT_MS = 10_000;

function peerChain(peer: PeerCertificate): Buffer[] {
  const out: Buffer[] = [];
  let c: (PeerCertificate & { issuerCertificate?: PeerCertificate }) | undefined = peer;
  while (c && c.raw && !out.some((d) => d.equals(c!.raw))) {
    out.push(c.raw);
    c = c.issuerCertificate;
  }
  return out;
}

export async function startTunnelServer(o: TunnelServerOptions): Promise<TunnelServer> {
  const host = o.host ?? '127.0.0.1';
  const log = o.log ?? (() => undefined);
  const identify = o.identify ?? nodeNameOf;
  const keepalive = o.keepalive ?? DEFAULT_KEEPALIVE;
  const clock = o.clock ?? systemClock;
  const material = { cert: o.tls.cert, key: o.tls.key, ca: o.tls.clientCa, minVersion: o.tls.minVersion };
  // 'request', not 'require': node's TLS server hangs up on an untrusted certificate without a word, so the check is
  // made here instead, and a refused agent is told why (in the GOAWAY) before anything else can happen on the connection.
  const tlsOptions = () => ({ ...serverOptions({ ...material, clientCert: 'request' }), ALPNProtocols: [ALPN] });
  let roots = parseClientCa(o.tls.clientCa);
  // Fails here, with the reason, rather than on the first handshake.
  createSecureContext(tlsOptions());

  /** The current connection of each node. */
  const links = new Map<string, AgentLink>();
  /** Every open agent connection, replaced ones still finishing their streams included. */
  const live = new Set<AgentLink>();
  const sockets = new Set<Socket>();
  const waiters = new Map<string, Set<(err?: Error) => void>>();
  let closing: Promise<void> | undefined;

  // Handshakes have a deadline and connections a cap; once secure, accept() and the keepalive PINGs run the connection.
  const guard = new ListenerGuard({
    name: 'tunnel server',
    limits: { ...o.limits, ...(o.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: o.handshakeTimeoutMs } : {}) },
    tls: true,
    requests: 'none',
    log: o.log ? (msg, fields) => log(msg, fields) : undefined,
  });
  const server: Server = createServer({ ...tlsOptions(), handshakeTimeout: guard.limits.handshakeTimeoutMs });
  guard.attach(server);
  server.on('connection', (raw: Socket) => {
    sockets.add(raw);
    raw.once('close', () => sockets.delete(raw));
  });
  server.on('tlsClientError', (e, s) => log('tunnel: agent TLS handshake failed', { remote: s.remoteAddress, error: e.message }));
  server.on('secureConnection', (s) => accept(s));

  function accept(socket: TLSSocket): void {
    socket.on('error', (e) => log('tunnel: agent connection error', { error: e.message }));
    // When HTTP/2 owns the TLS socket, the TCP socket under it is not always told that it closed, and the listener
    // would count it as open forever.
    socket.once('close', () => (socket as TLSSocket & { _parent?: Socket })._parent?.destroy());
    socket.setNoDelay(true);
    if (closing) return void socket.destroy();
    if (socket.alpnProtocol !== ALPN) {
      // Not an agent: nothing that speaks our protocol is listening, so there is no one to tell why.
      log('tunnel: refused a connection without the tunnel ALPN', { remote: socket.remoteAddress, alpn: socket.alpnProtocol });
      return void socket.destroy();
    }
    const peer = socket.getPeerCertificate(true);
    if (!socket.authorized || !peer?.raw) {
      const why = peer?.raw ? String(socket.authorizationError) : 'no client certificate was presented';
      return refuse(socket, `client certificate not accepted (${why}): a node agent needs its kubelet client certificate from the cluster root CA`);
    }
    let node: string | null;
    try {
      node = identify(peer);
    } catch (e) {
      node = null;
      log('tunnel: identify failed', { error: (e as Error).message });
    }
    if (!node) {
      return refuse(socket, `certificate "${describeSubject(peer)}" is not a node's: a node agent needs CN=system:node:<name> and O=system:nodes`);
    }
    let serialHex: string;
    let identity: ClientIdentity | undefined;
    try {
      const leaf = parseCertificate(peer.raw);
      serialHex = leaf.serialHex;
      identity = clientIdentityOf(leaf);
    } catch (e) {
      return refuse(socket, `certificate of node ${node} cannot be read: ${(e as Error).message}`);
    }
    if (o.isRevoked?.(node, serialHex)) {
      return refuse(socket, `certificate ${serialHex} of node ${node} is revoked: the node needs a new client certificate`);
    }
    const notAfter = new Date(peer.valid_to);
    if (clock.now().getTime() > notAfter.getTime()) {
      return refuse(socket, `certificate ${serialHex} of node ${node} expired at ${notAfter.toISOString()}: the node needs a new client certificate`);
    }

    const session = http2.connect('https://tunnel.agent', {
      createConnection: () => socket,
      settings: SETTINGS,
      maxSessionMemory: MAX_SESSION_MEMORY_MB,
    });
    const link: AgentLink = { node, socket, session, chain: peerChain(peer), serialHex, notAfter, streams: new Set(), stop: () => undefined, identity, address: plainAddress(socket.remoteAddress) };
    observe(link);
    session.on('error', (e) => log('tunnel: agent session error', { node: link.node, error: e.message }));
    session.once('connect', () => {
      try {
        session.setLocalWindowSize(CONNECTION_WINDOW);
      } catch {
        // A session already going away keeps its default window.
      }
      session.ping(WELCOME, () => undefined);
    });
    link.stop = keepSessionAlive(session, keepalive, (why) => drop(link, `agent does not answer: ${why}`));
    live.add(link);
    session.once('close', () => {
      observe(link);
      // A connection replaced by a newer one of the same node closes after it: the newer is seen again, so that its
      // sighting stays the latest (the node moved, e.g. to a certificate of a new CA generation).
      const current = links.get(node!);
      if (current && current !== link) observe(current);
      live.delete(link);
      link.stop();
      if (links.get(node!) === link) {
        links.delete(node!);
        log('tunnel: node disconnected', { node });
      }
    });

    const previous = links.get(node);
    links.set(node, link);
    log('tunnel: node connected', { node, serial: serialHex, protocol: socket.getProtocol(), remote: socket.remoteAddress, replaced: previous !== undefined });
    if (previous) {
      // Graceful: streams already open on the old connection finish; new ones go to the new connection.
      sendGoaway(previous.session, GOAWAY.replaced, 'replaced by a newer connection of the same node');
      previous.session.close();
    }
    const ws = waiters.get(node);
    if (ws) for (const w of [...ws]) w();
  }

  /** An open tunnel presents its certificate for as long as it is open: seen at connect, on each sweep, at close. */
  function observe(link: AgentLink): void {
    if (link.identity) o.observed?.see(link.identity, 'tunnel', link.address, clock.now().getTime());
  }

  /** Tells the agent why (GOAWAY with the reason as its opaque data), then closes. */
  function refuse(socket: TLSSocket, reason: string): void {
    log('tunnel: refused agent', { reason, remote: socket.remoteAddress });
    const session = http2.connect('https://tunnel.agent', { createConnection: () => socket, settings: SETTINGS });
    session.on('error', () => undefined);
    session.once('connect', () => {
      sendGoaway(session, GOAWAY.refused, `tunnel refused: ${reason}`);
      session.close();
    });
    // An agent that does not hang up is cut off.
    setTimeout(() => socket.destroy(), 2_000).unref();
  }

  function drop(link: AgentLink, reason: string): void {
    link.stop();
    if (links.get(link.node) === link) links.delete(link.node);
    if (link.session.destroyed) return;
    log('tunnel: dropping node', { node: link.node, reason });
    sendGoaway(link.session, GOAWAY.dropped, reason);
    link.session.destroy(undefined, GOAWAY.dropped);
    setTimeout(() => link.socket.destroy(), 1_000).unref();
  }

  // An agent cannot outlive its credentials: connections whose client certificate has expired are dropped. One sweep
  // for all of them, on the keepalive interval, rather than a timer per connection.
  const sweep = setInterval(() => {
    const now = clock.now().getTime();
    for (const link of [...live]) {
      if (now > link.notAfter.getTime()) drop(link, `client certificate expired at ${link.notAfter.toISOString()}`);
      else observe(link);
    }
  }, keepalive.intervalMs);
  sweep.unref();

  function unavailable(node: string, why: string): TrustplaneError {
    return new TrustplaneError(
      'Unavailable',
      `node ${node} cannot be reached through the tunnel: ${why}`,
      `check that the node agent on ${node} is running and can reach the tunnel server at ${url}, and that its client certificate is valid`,
    );
  }

  function dial(node: string, d: { timeoutMs?: number } = {}): Promise<Duplex> {
    const link = links.get(node);
    if (closing) return Promise.reject(unavailable(node, 'the tunnel server is closing'));
    if (!link || link.session.closed || link.session.destroyed) return Promise.reject(unavailable(node, 'it has no tunnel connected'));
    const timeoutMs = d.timeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
    return new Promise<Duplex>((resolve, reject) => {
      let stream: http2.ClientHttp2Stream;
      try {
        stream = link.session.request({ ':method': 'CONNECT', ':authority': STREAM_AUTHORITY }, { endStream: false });
      } catch (e) {
        return reject(unavailable(node, (e as Error).message));
      }
      link.streams.add(stream);
      // Errors still reach the caller's listeners; this one only keeps a reset stream from ending the process.
      stream.on('error', () => undefined);
      let settled = false;
      const fail = (e: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
        reject(e);
      };
      const timer = setTimeout(
        () => fail(new TrustplaneError('Timeout', `node ${node} did not accept a tunnel stream within ${timeoutMs} ms`, 'the node agent may be overloaded or stuck; check its logs')),
        timeoutMs,
      );
      stream.once('close', () => {
        link.streams.delete(stream);
        fail(unavailable(node, `the stream closed before the node accepted it (code ${stream.rstCode})`));
      });
      stream.once('response', (headers) => {
        if (settled) return;
        const status = Number(headers[':status']);
        if (status !== 200) return fail(unavailable(node, `the node agent answered the stream with status ${status}`));
        settled = true;
        clearTimeout(timer);
        const tap = o.onTap;
        resolve(tap ? new TappedStream(stream, (dir, chunk) => tap(node, stream.id ?? 0, dir, chunk)) : stream);
      });
    });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const url = `https://${urlHost}:${port}`;
  log('tunnel: listening', { url });

  return {
    url,
    port,
    dial,
    connectedNodes: () => [...links.keys()].sort(),
    isConnected: (node) => links.has(node),
    waitFor(node, timeoutMs) {
      if (links.has(node)) return Promise.resolve();
      if (closing) return Promise.reject(unavailable(node, 'the tunnel server is closing'));
      return new Promise<void>((resolve, reject) => {
        const set = waiters.get(node) ?? new Set();
        waiters.set(node, set);
        const settle = (err?: Error) => {
          clearTimeout(timer);
          set.delete(settle);
          if (set.size === 0 && waiters.get(node) === set) waiters.delete(node);
          if (err) reject(err);
          else resolve();
        };
        const timer = setTimeout(
          () => settle(new TrustplaneError('Timeout', `node ${node} did not connect its tunnel within ${timeoutMs} ms`, `check the node agent's logs on ${node}`)),
          timeoutMs,
        );
        set.add(settle);
      });
    },
    disconnect(node) {
      const link = links.get(node);
      if (link) drop(link, 'disconnected by the control plane');
    },
    setClientCa(pem) {
      const next = parseClientCa(pem);
      createSecureContext(serverOptions({ ...material, ca: pem, clientCert: 'request' }));
      material.ca = pem;
      roots = next;
      server.setSecureContext(tlsOptions());
      const now = clock.now();
      for (const link of [...live]) {
        const problem = judge(link, roots, now, o.isRevoked);
        if (problem) drop(link, problem);
      }
    },
    setServingCert(c) {
      try {
        createSecureContext(serverOptions({ ...material, cert: c.cert, key: c.key, clientCert: 'request' }));
      } catch (e) {
        throw invalid(`the new serving certificate cannot be used: ${(e as Error).message}`);
      }
      material.cert = c.cert;
      material.key = c.key;
      server.setSecureContext(tlsOptions());
    },
    stats() {
      let streams = 0;
      for (const l of live) streams += l.streams.size;
      return { agents: links.size, streams };
    },
    connectionStats: () => guard.stats(),
    close() {
      closing ??= new Promise<void>((resolve) => {
        clearInterval(sweep);
        server.close(() => resolve());
        for (const link of [...live]) drop(link, 'the tunnel server is shutting down');
        for (const [node, set] of [...waiters]) for (const settle of [...set]) settle(unavailable(node, 'the tunnel server is closing'));
        // Dropped connections get a moment to flush their GOAWAY; then everything still open goes, handshakes in
        // progress and refused connections included.
        const force = setTimeout(() => {
          for (const s of sockets) s.destroy();
        }, 250);
        server.once('close', () => clearTimeout(force));
      });
      return closing;
    },
  };
}

function parseClientCa(pem: string): ParsedCertificate[] {
  let certs: ParsedCertificate[];
  try {
    certs = parseCertificates(pem);
  } catch (e) {
    throw invalid(`the client CA bundle cannot be read: ${(e as Error).message}`, 'pass the PEM certificates of the cluster root CA');
  }
  if (certs.length === 0) throw invalid('the client CA bundle has no PEM certificate', 'pass the PEM certificates of the cluster root CA');
  return certs;
}

/** Why a connected agent's certificate is no longer acceptable under `roots`, or undefined when it still is. */
function judge(link: AgentLink, roots: ParsedCertificate[], at: Date, isRevoked?: (node: string, serialHex: string) => boolean): string | undefined {
  try {
    const [leaf, ...rest] = link.chain.map((d) => parseCertificate(d));
    verifyChain(leaf, rest, roots, { at, purpose: 'clientAuth' });
  } catch (e) {
    return `client certificate no longer trusted: ${(e as Error).message}`;
  }
  if (isRevoked?.(link.node, link.serialHex)) return `certificate ${link.serialHex} of node ${link.node} is revoked`;
  return undefined;
}

function sendGoaway(session: http2.Http2Session, code: number, reason: string): void {
  if (session.destroyed || session.closed) return;
  try {
    session.goaway(code, 0, Buffer.from(reason.slice(0, 1024)));
  } catch {
    // Already going away.
  }
}
