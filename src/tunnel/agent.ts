// The node side of the reverse tunnel: keeps one mTLS connection to the tunnel server and serves the streams it opens.
import { EventEmitter } from 'node:events';
import http2 from 'node:http2';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect, type TLSSocket } from 'node:tls';
import { clientOptions, type MinVersion } from '../tls/policy.js';
import { TrustplaneError, invalid } from '../util/errors.js';
import {
  ALPN,
  CONNECTION_WINDOW,
  DEFAULT_KEEPALIVE,
  MAX_SESSION_MEMORY_MB,
  SETTINGS,
  WELCOME,
  keepSessionAlive,
  type Keepalive,
} from './protocol.js';

export interface AgentCredentials {
  /** The kubelet client certificate (PEM, leaf first): CN system:node:<name>, O system:nodes. */
  cert: string;
  key: string;
  /** Trust anchors for the tunnel server's serving certificate (the cluster root CA generations). */
  ca: string;
}

export interface Backoff {
  /** First delay before dialling again; each failure doubles it, up to maxMs. */
  initialMs: number;
  maxMs: number;
}

export interface TunnelAgentOptions {
  /** The tunnel server, https://host:port. */
  url: string;
  /** Read on every (re)connection, so renewed certificates are picked up. */
  credentials: () => AgentCredentials;
  /** Name to verify the server certificate against (and send as SNI); default the URL's host. */
  serverName?: string;
  minVersion?: MinVersion;
  /** A stream the control plane opened, as a raw byte pipe; typically `nodeHttpsServer.emit('connection', stream)`. */
  onStream: (stream: Duplex, info: { id: number }) => void;
  /** Delays between attempts: jittered exponential, default 250 ms doubling up to 30 s. */
  backoff?: Backoff;
  log?: (msg: string, fields?: object) => void;
  /** PINGs that find a dead connection. Default every 20 s, 10 s to answer. */
  keepalive?: Keepalive;
  /** How long one attempt may take from dialling to being accepted. Default 10 s. */
  connectTimeoutMs?: number;
}

export type TunnelAgentEvent = 'connected' | 'disconnected' | 'connectError';

export interface TunnelAgent {
  /** True while a connection accepted by the tunnel server is up. */
  readonly connected: boolean;
  /** Why the last attempt failed or the last connection ended (the server's refusal reason when it gave one). */
  readonly lastError: string | undefined;
  waitConnected(timeoutMs: number): Promise<void>;
  /** Dials again now, with current credentials, resetting the backoff. The old connection stays until the new one is accepted. */
  reconnect(): void;
  /** The credentials getter now returns renewed material: same as reconnect(). */
  updateCredentials(): void;
  close(): Promise<void>;
  /** 'connected' (a connection was accepted), 'disconnected' (no connection any more), 'connectError' (an attempt failed, with its reason). */
  on(event: TunnelAgentEvent, fn: (...args: any[]) => void): this;
  once(event: TunnelAgentEvent, fn: (...args: any[]) => void): this;
  off(event: TunnelAgentEvent, fn: (...args: any[]) => void): this;
}

export const DEFAULT_BACKOFF: Backoff = { initialMs: 250, maxMs: 30_000 };

/** Equal jitter: half the exponential step for certain, the other half at random, so a restarted server is not stormed in step. */
export function backoffDelay(b: Backoff, failures: number, random = Math.random): number {
  const step = Math.min(b.maxMs, b.initialMs * 2 ** Math.min(failures, 30));
  return step / 2 + random() * (step / 2);
}

/** One attempt or live connection. */
interface Conn {
  socket: TLSSocket;
  session?: http2.ServerHttp2Session;
  welcomed: boolean;
  /** The server's GOAWAY reason, or the socket's error. */
  reason?: string;
  ended: boolean;
  /** Superseded by a fresher attempt: its end is nobody's business. */
  abandoned: boolean;
  stop: () => void;
}

class Agent extends EventEmitter implements TunnelAgent {
  private current: Conn | undefined;
  private pending: Conn | undefined;
  private readonly conns = new Set<Conn>();
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private closed = false;
  private error: string | undefined;
  private readonly host: string;
  private readonly port: number;
  private readonly backoff: Backoff;
  private readonly log: (msg: string, fields?: object) => void;

  constructor(private readonly o: TunnelAgentOptions) {
    super();
    let u: URL;
    try {
      u = new URL(o.url);
    } catch {
      throw invalid(`tunnel server URL "${o.url}" is not a URL`, 'use https://host:port');
    }
    if (u.protocol !== 'https:') throw invalid(`tunnel server URL "${o.url}" is not https`, 'use https://host:port');
    this.host = u.hostname.replace(/^\[(.*)\]$/, '$1');
    this.port = Number(u.port || 443);
    this.backoff = o.backoff ?? DEFAULT_BACKOFF;
    if (!(this.backoff.initialMs > 0) || !(this.backoff.maxMs >= this.backoff.initialMs)) {
      throw invalid(`backoff ${JSON.stringify(this.backoff)} is not usable`, 'initialMs must be positive and maxMs at least initialMs');
    }
    this.log = o.log ?? (() => undefined);
  }

  get connected(): boolean {
    return this.current !== undefined;
  }

  get lastError(): string | undefined {
    return this.error;
  }

  start(): void {
    this.attempt();
  }

  private attempt(): void {
    if (this.closed || this.pending) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    let creds: AgentCredentials;
    try {
      creds = this.o.credentials();
    } catch (e) {
      return this.failed(`credentials are not available: ${(e as Error).message}`);
    }
    let socket: TLSSocket;
    try {
      socket = connect({
        ...clientOptions({ cert: creds.cert, key: creds.key, ca: creds.ca, minVersion: this.o.minVersion, servername: this.o.serverName ?? (isIP(this.host) ? undefined : this.host) }),
        host: this.host,
        port: this.port,
        ALPNProtocols: [ALPN],
      });
    } catch (e) {
      // Unreadable PEM and the like: retried with backoff, as the getter may return usable material later.
      return this.failed(`cannot dial the tunnel server: ${(e as Error).message}`);
    }
    const conn: Conn = { socket, welcomed: false, ended: false, abandoned: false, stop: () => undefined };
    this.pending = conn;
    this.conns.add(conn);
    socket.setNoDelay(true);
    const deadline = setTimeout(() => {
      conn.reason ??= `the tunnel server did not accept the connection within ${this.o.connectTimeoutMs ?? 10_000} ms`;
      socket.destroy();
    }, this.o.connectTimeoutMs ?? 10_000);
    let stopKeepalive = () => undefined as void;
    conn.stop = () => {
      clearTimeout(deadline);
      stopKeepalive();
    };
    socket.on('error', (e) => {
      conn.reason ??= e.message;
    });
    socket.once('close', () => this.ended(conn));
    socket.once('secureConnect', () => {
      if (socket.alpnProtocol !== ALPN) {
        conn.reason = `the server at ${this.o.url} does not speak the tunnel protocol (ALPN ${socket.alpnProtocol || 'none'})`;
        return void socket.destroy();
      }
      // Roles reversed: on the connection it dialled, the agent is the HTTP/2 server.
      const h2 = http2.createServer({ settings: SETTINGS, maxSessionMemory: MAX_SESSION_MEMORY_MB });
      h2.once('session', (session: http2.ServerHttp2Session) => {
        conn.session = session;
        try {
          session.setLocalWindowSize(CONNECTION_WINDOW);
        } catch {
          // Keeps the default window.
        }
        session.on('error', (e) => {
          conn.reason ??= e.message;
        });
        session.on('goaway', (_code: number, _last: number, data?: Buffer) => {
          if (data && data.length > 0) conn.reason ??= data.toString('utf8');
        });
        session.on('ping', (payload: Buffer) => {
          if (!conn.welcomed && payload.equals(WELCOME)) {
            clearTimeout(deadline);
            this.accepted(conn);
          }
        });
        session.on('stream', (stream, headers) => this.stream(stream, headers));
        session.once('close', () => socket.destroy());
        stopKeepalive = keepSessionAlive(session, this.o.keepalive ?? DEFAULT_KEEPALIVE, (why) => {
          conn.reason ??= `the tunnel server does not answer: ${why}`;
          socket.destroy();
        });
      });
      h2.emit('connection', socket);
    });
  }

  private stream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    // Errors still reach the endpoint's listeners; this one only keeps a reset stream from ending the process.
    stream.on('error', () => undefined);
    if (headers[':method'] !== 'CONNECT') {
      stream.respond({ ':status': 405 }, { endStream: true });
      return;
    }
    stream.respond({ ':status': 200 });
    try {
      this.o.onStream(stream, { id: stream.id ?? 0 });
    } catch (e) {
      this.log('tunnel agent: onStream failed', { error: (e as Error).message });
      stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    }
  }

  private accepted(conn: Conn): void {
    conn.welcomed = true;
    if (this.pending === conn) this.pending = undefined;
    const old = this.current;
    this.current = conn;
    this.failures = 0;
    this.error = undefined;
    this.log('tunnel agent: connected', { url: this.o.url, replaced: old !== undefined });
    // Make before break: streams open on the old connection finish there, new ones come on this one.
    if (old) {
      old.abandoned = true;
      old.session?.close();
    }
    this.emit('connected');
  }

  private ended(conn: Conn): void {
    if (conn.ended) return;
    conn.ended = true;
    conn.stop();
    this.conns.delete(conn);
    conn.session?.destroy();
    if (conn.abandoned || this.closed) return;
    const reason = conn.reason ?? 'the connection closed';
    if (this.pending === conn) {
      this.pending = undefined;
      this.failed(reason);
    } else if (this.current === conn) {
      this.current = undefined;
      this.error = reason;
      this.log('tunnel agent: disconnected', { url: this.o.url, reason });
      this.emit('disconnected', reason);
      this.schedule();
    }
  }

  private failed(reason: string): void {
    this.failures++;
    this.error = reason;
    this.log('tunnel agent: connection attempt failed', { url: this.o.url, reason, failures: this.failures });
    this.emit('connectError', reason);
    this.schedule();
  }

  private schedule(): void {
    if (this.closed || this.timer || this.pending) return;
    const delay = backoffDelay(this.backoff, Math.max(0, this.failures - 1));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.attempt();
    }, delay);
  }

  waitConnected(timeoutMs: number): Promise<void> {
    if (this.current) return Promise.resolve();
    if (this.closed) return Promise.reject(new TrustplaneError('Unavailable', 'the tunnel agent is closed'));
    return new Promise<void>((resolve, reject) => {
      const onConnected = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.off('connected', onConnected);
        reject(
          new TrustplaneError(
            'Timeout',
            `the tunnel agent did not connect to ${this.o.url} within ${timeoutMs} ms${this.error ? `: ${this.error}` : ''}`,
            'check that the tunnel server is reachable and that the node certificate is from the cluster root CA and not revoked',
          ),
        );
      }, timeoutMs);
      this.once('connected', onConnected);
    });
  }

  reconnect(): void {
    if (this.closed) return;
    this.failures = 0;
    if (this.pending) {
      // It may have been dialled with the old credentials.
      this.pending.abandoned = true;
      this.pending.socket.destroy();
      this.pending = undefined;
    }
    this.attempt();
  }

  updateCredentials(): void {
    this.reconnect();
  }

  close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.pending = undefined;
    const wasConnected = this.current !== undefined;
    this.current = undefined;
    const closes = [...this.conns].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.ended) return resolve();
          c.socket.once('close', () => resolve());
          c.session?.destroy();
          c.socket.destroy();
        }),
    );
    if (wasConnected) this.emit('disconnected', 'closed');
    return Promise.all(closes).then(() => undefined);
  }
}

export function startTunnelAgent(o: TunnelAgentOptions): TunnelAgent {
  const agent = new Agent(o);
  agent.start();
  return agent;
}
