// One guard for every listener trustplane opens: bounded TLS handshakes and idle time, capped connections, nothing left half-closed.
import { readFileSync } from 'node:fs';
import type { Http2Session, Http2Stream } from 'node:http2';
import type { Server as NetServer, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { invalid } from '../util/errors.js';
import { createLogger } from '../util/log.js';

/**
 * How long a connection may take and how many may be open. Every value has a default (DEFAULT_CONNECTION_LIMITS);
 * kube-apiserver's own choices where it has them (ReadHeaderTimeout 32 s).
 */
export interface ConnectionLimits {
  /** From accept to a finished TLS handshake. A deadline, not an idle timer: a byte every few seconds does not stretch it. */
  handshakeTimeoutMs?: number;
  /** A connection with no request in flight (before its first, between two) is closed after this long. */
  idleTimeoutMs?: number;
  /** HTTP/1.1: the request line and headers must have arrived within this. */
  headersTimeoutMs?: number;
  /** HTTP/1.1: the whole request, body included, must have arrived within this. */
  requestTimeoutMs?: number;
  /** Connections this listener holds at once; more are closed at accept. Default: only the process budget applies. */
  maxConnections?: number;
  /** Connections one source address holds at once on this listener. */
  maxPerSource?: number;
  /**
   * Whether loopback sources (127.0.0.0/8, ::1) count against maxPerSource. Default false: `trustplane up`, the tests
   * and the benchmarks run thousands of nodes from 127.0.0.1; the listener and process caps still apply to them.
   */
  limitLoopback?: boolean;
}

export const DEFAULT_CONNECTION_LIMITS = {
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 65_000,
  headersTimeoutMs: 32_000,
  requestTimeoutMs: 60_000,
  maxConnections: Infinity,
  maxPerSource: 512,
  limitLoopback: false,
} as const satisfies Required<ConnectionLimits>;

/** Descriptors kept out of the connection budget for the stores, key files, logs and outgoing connections. */
const RESERVED_DESCRIPTORS = 1024;

/** Connections all guarded listeners of this process may hold together: the descriptor limit less a reserve. */
export interface ConnectionBudget {
  limit: number;
  open: number;
}

let processBudget: ConnectionBudget | undefined;

/** The process-wide budget, sized from the soft RLIMIT_NOFILE the first time a listener needs it. */
export function processConnectionBudget(): ConnectionBudget {
  processBudget ??= { limit: Math.max(64, descriptorLimit() - RESERVED_DESCRIPTORS), open: 0 };
  return processBudget;
}

function descriptorLimit(): number {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m && m[1] !== 'unlimited') return Number(m[1]);
  } catch {
    // Not Linux: fall through to a conservative figure.
  }
  return 4096;
}

export type GuardEvent = 'source-cap' | 'listener-cap' | 'process-cap' | 'handshake-timeout' | 'idle-timeout' | 'request-timeout' | 'tls-error';

export interface GuardOptions {
  /** What the listener is, for log lines ("API server of cluster prod"). */
  name: string;
  limits?: ConnectionLimits;
  /** A TLS listener: the handshake deadline applies. */
  tls: boolean;
  /** 'http': HTTP/1.1 requests and HTTP/2 streams make a connection busy; idle ones are closed. 'none': the owner (tunnel, gRPC) runs the connection once it is secure. */
  requests: 'http' | 'none';
  /** Where the rate-limited lines go; default a `trustplane` logger on standard error. */
  log?: (msg: string, fields: Record<string, unknown>) => void;
  /** Default processConnectionBudget(). */
  budget?: ConnectionBudget;
}

export interface GuardStats {
  open: number;
  events: Record<GuardEvent, number>;
}

/** What the guard reads of an HTTP/1.1 request or an HTTP/2 compat request. */
interface GuardedRequest {
  httpVersionMajor: number;
  socket: Duplex;
  complete: boolean;
  stream?: { endAfterHeaders: boolean; close(code: number): void };
}

/** RST_STREAM CANCEL (RFC 9113 7). */
const NGHTTP2_CANCEL = 0x8;

/** Per accepted connection. */
interface Conn {
  raw: Duplex;
  source: string | undefined;
  secure?: TLSSocket;
  handshake?: NodeJS.Timeout;
  idle?: NodeJS.Timeout;
  busy: number;
  released: boolean;
}

/** Log lines about one listener at most this often; what happened between is counted in the next line. */
const LOG_INTERVAL_MS = 10_000;

function normalizeSource(address: string | undefined): string | undefined {
  if (!address) return undefined;
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

export function isLoopback(address: string): boolean {
  return address === '::1' || address.startsWith('127.');
}

/**
 * Applied to a server before it listens: `createServer({ ...tlsOptions, ...guard.serverOptions() })`, then
 * `guard.attach(server)`. What cannot be answered is destroyed, never ended: a TLS socket whose handshake did not
 * finish cannot flush an end(), and would sit in CLOSE-WAIT for good.
 */
export class ListenerGuard {
  readonly limits: Required<ConnectionLimits>;
  private readonly conns = new Set<Conn>();
  private readonly byRaw = new WeakMap<object, Conn>();
  private readonly perSource = new Map<string, number>();
  private readonly budget: ConnectionBudget;
  private readonly counts: Record<GuardEvent, number> = { 'source-cap': 0, 'listener-cap': 0, 'process-cap': 0, 'handshake-timeout': 0, 'idle-timeout': 0, 'request-timeout': 0, 'tls-error': 0 };
  private lastLog = new Map<string, { at: number; logged: number }>();
  private logFn: GuardOptions['log'];

  constructor(private readonly o: GuardOptions) {
    const l = { ...DEFAULT_CONNECTION_LIMITS, ...limitsFromEnvironment(), ...definedOnly(o.limits ?? {}) };
    // node refuses a request timeout shorter than the headers timeout.
    l.requestTimeoutMs = Math.max(l.requestTimeoutMs, l.headersTimeoutMs);
    this.limits = l;
    this.budget = o.budget ?? processConnectionBudget();
    this.logFn = o.log;
  }

  /**
   * Constructor-only options: node's own handshake timeout (the only one for tunnel streams, whose TLS socket the guard
   * cannot match at accept), and how often node checks HTTP/1.1 header and request timeouts.
   */
  serverOptions(): { handshakeTimeout: number; connectionsCheckingInterval: number; headersTimeout: number; requestTimeout: number } {
    return {
      handshakeTimeout: this.limits.handshakeTimeoutMs,
      connectionsCheckingInterval: Math.max(50, Math.min(30_000, Math.floor(this.limits.headersTimeoutMs / 4))),
      headersTimeout: this.limits.headersTimeoutMs,
      requestTimeout: this.limits.requestTimeoutMs,
    };
  }

  attach(server: NetServer): this {
    const s = server as NetServer & { headersTimeout?: number; requestTimeout?: number; keepAliveTimeout?: number };
    if (this.o.requests === 'http') {
      s.headersTimeout = this.limits.headersTimeoutMs;
      s.requestTimeout = this.limits.requestTimeoutMs;
      // A shorter keep-alive of the server's own (node's default 5 s) stays.
      s.keepAliveTimeout = typeof s.keepAliveTimeout === 'number' ? Math.min(s.keepAliveTimeout, this.limits.idleTimeoutMs) : this.limits.idleTimeoutMs;
    }
    server.on('connection', (raw: Duplex) => this.onConnection(raw));
    if (this.o.tls) {
      server.on('secureConnection', (t: TLSSocket) => this.onSecure(t));
      // A TLS failure before the handshake finished has no one to answer.
      server.on('tlsClientError', (e: Error, t: TLSSocket) => {
        this.note('tls-error', { remote: t.remoteAddress, error: e.message }, false);
        this.destroy(t);
      });
    }
    if (this.o.requests === 'http') {
      server.on('clientError', (e: NodeJS.ErrnoException, socket: Duplex) => this.onClientError(e, socket));
      server.on('request', (req: GuardedRequest, res: { once(ev: 'close', f: () => void): void }) => {
        this.requestDeadline(req, res);
        if (req.httpVersionMajor === 2) return; // HTTP/2 streams are counted on their session
        const c = this.connOf(req.socket);
        if (!c) return;
        this.busy(c);
        res.once('close', () => this.free(c));
      });
      server.on('session', (session: Http2Session) => this.onSession(session));
    }
    return this;
  }

  /** Connections open now, and what the guard did so far. */
  stats(): GuardStats {
    return { open: this.conns.size, events: { ...this.counts } };
  }

  /** Destroys connections with nothing in flight: HTTP/1.1 ones between requests, and any still in its handshake (shutdown; HTTP/2 sessions are closed by their owner). */
  closeIdle(): void {
    for (const c of [...this.conns]) {
      if (c.busy > 0 || c.secure?.alpnProtocol === 'h2') continue;
      c.secure?.destroy();
      c.raw.destroy();
    }
  }

  /** Destroys every connection (shutdown). */
  destroyAll(): void {
    for (const c of [...this.conns]) {
      c.secure?.destroy();
      c.raw.destroy();
    }
  }

  private onConnection(raw: Duplex): void {
    const address = (raw as Partial<Socket>).remoteAddress;
    const source = normalizeSource(typeof address === 'string' ? address : undefined);
    // Streams handed over by the reverse tunnel carry no address: the tunnel itself is guarded, and counts them.
    if (source !== undefined) {
      const fromSource = this.perSource.get(source) ?? 0;
      let refused: GuardEvent | undefined;
      if (this.conns.size >= this.limits.maxConnections) refused = 'listener-cap';
      else if (this.budget.open >= this.budget.limit) refused = 'process-cap';
      else if (fromSource >= this.limits.maxPerSource && (this.limits.limitLoopback || !isLoopback(source))) refused = 'source-cap';
      if (refused) {
        raw.destroy();
        this.note(refused, { remote: source, fromSource, open: this.conns.size, processOpen: this.budget.open, processLimit: this.budget.limit }, true);
        return;
      }
      this.perSource.set(source, fromSource + 1);
      this.budget.open++;
    }
    const c: Conn = { raw, source, busy: 0, released: false };
    this.conns.add(c);
    this.byRaw.set(raw, c);
    raw.once('close', () => this.release(c));
    raw.on('error', () => undefined);
    if (this.o.tls) {
      // Tunnel streams (no address) cannot be matched to their TLS socket here; node's own handshake timeout covers them.
      if (source !== undefined) {
        c.handshake = setTimeout(() => {
          if (c.secure || c.released) return;
          this.note('handshake-timeout', { remote: source }, false);
          raw.destroy();
        }, this.limits.handshakeTimeoutMs);
        c.handshake.unref();
      }
    } else if (this.o.requests === 'http') this.arm(c);
  }

  private onSecure(t: TLSSocket): void {
    const parent = (t as TLSSocket & { _parent?: Duplex | null })._parent;
    let c = parent ? this.byRaw.get(parent) : undefined;
    if (!c) {
      // A tunnel stream: its guard entry starts now, at its TLS socket.
      c = { raw: t, source: undefined, busy: 0, released: false };
      this.conns.add(c);
      t.once('close', () => this.release(c!));
    }
    const conn = c;
    conn.secure = t;
    this.byRaw.set(t, conn);
    clearTimeout(conn.handshake);
    // When HTTP/2 owns the TLS socket, the TCP socket under it is not always told that it closed.
    t.once('close', () => {
      conn.raw.destroy();
      this.release(conn);
    });
    if (this.o.requests === 'http' && t.alpnProtocol !== 'h2' && conn.busy === 0) this.arm(conn);
  }

  private onSession(session: Http2Session): void {
    const socket = session.socket as (TLSSocket & { _parent?: Duplex | null }) | undefined;
    const c = (socket?._parent && this.byRaw.get(socket._parent)) || undefined;
    let busy = 0;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        if (busy > 0 || session.destroyed) return;
        this.note('idle-timeout', { remote: c?.source, protocol: 'h2' }, false);
        // Graceful: a GOAWAY first; a client that does not hang up is cut off.
        session.close();
        setTimeout(() => session.destroy(), 1_000).unref();
      }, this.limits.idleTimeoutMs);
      timer.unref();
    };
    arm();
    session.on('stream', (stream: Http2Stream) => {
      busy++;
      clearTimeout(timer);
      stream.once('close', () => {
        if (--busy === 0 && !session.destroyed) arm();
      });
    });
    session.once('close', () => clearTimeout(timer));
  }

  /**
   * A request whose body has not all arrived within requestTimeoutMs is cut off as if its client had gone away: node's
   * own requestTimeout does not run under an HTTP/2 server's HTTP/1.1 fallback, and HTTP/2 has none.
   */
  private requestDeadline(req: GuardedRequest, res: { once(ev: 'close', f: () => void): void }): void {
    // A request without a body (every GET, and so every watch) is complete once its headers are in.
    if (req.complete || req.stream?.endAfterHeaders) return;
    const timer = setTimeout(() => {
      if (req.complete) return;
      this.note('request-timeout', { remote: this.connOf(req.socket)?.source }, false);
      if (req.stream) req.stream.close(NGHTTP2_CANCEL);
      else req.socket.destroy();
    }, this.limits.requestTimeoutMs);
    timer.unref();
    res.once('close', () => clearTimeout(timer));
  }

  private onClientError(e: NodeJS.ErrnoException, socket: Duplex): void {
    const c = this.connOf(socket);
    const handshaken = !this.o.tls || !!c?.secure;
    const msg = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (!handshaken || !socket.writable || msg?.headersSent) return void this.destroy(socket);
    const status = e.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : e.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    // A client that reads nothing would hold the answer, and the socket, forever.
    setTimeout(() => this.destroy(socket), 1_000).unref();
  }

  private connOf(socket: Duplex): Conn | undefined {
    const direct = this.byRaw.get(socket);
    if (direct) return direct;
    const parent = (socket as Duplex & { _parent?: Duplex | null })._parent;
    return parent ? this.byRaw.get(parent) : undefined;
  }

  private destroy(socket: Duplex): void {
    socket.destroy();
    const c = this.connOf(socket);
    if (c && c.raw !== socket) c.raw.destroy();
  }

  private busy(c: Conn): void {
    c.busy++;
    clearTimeout(c.idle);
  }

  private free(c: Conn): void {
    if (--c.busy === 0 && !c.released) this.arm(c);
  }

  private arm(c: Conn): void {
    clearTimeout(c.idle);
    c.idle = setTimeout(() => {
      if (c.busy > 0 || c.released) return;
      this.note('idle-timeout', { remote: c.source }, false);
      c.secure?.destroy();
      c.raw.destroy();
    }, this.limits.idleTimeoutMs);
    c.idle.unref();
  }

  private release(c: Conn): void {
    if (c.released) return;
    c.released = true;
    clearTimeout(c.handshake);
    clearTimeout(c.idle);
    this.conns.delete(c);
    if (c.source !== undefined) {
      this.budget.open--;
      const n = (this.perSource.get(c.source) ?? 1) - 1;
      if (n <= 0) this.perSource.delete(c.source);
      else this.perSource.set(c.source, n);
    }
  }

  /**
   * Counts the event. Caps and handshake timeouts are logged (a line per kind per LOG_INTERVAL_MS at most, counting
   * what happened in between); idle closes and failed handshakes are routine and only counted.
   */
  private note(ev: GuardEvent, fields: Record<string, unknown>, warn: boolean): void {
    this.counts[ev]++;
    if (ev === 'idle-timeout' || ev === 'tls-error') return;
    const now = Date.now();
    const last = this.lastLog.get(ev);
    if (last && now - last.at < LOG_INTERVAL_MS) return;
    const total = this.counts[ev];
    const since = last ? total - last.logged : total;
    this.lastLog.set(ev, { at: now, logged: total });
    const what = {
      'source-cap': `refused a connection: its source already holds ${this.limits.maxPerSource} connections (maxPerSource)`,
      'listener-cap': `refused a connection: the listener already holds ${this.limits.maxConnections} connections (maxConnections)`,
      'process-cap': `refused a connection: the process holds ${this.budget.limit} connections, all its file descriptors allow`,
      'handshake-timeout': `closed a connection that did not finish its TLS handshake within ${this.limits.handshakeTimeoutMs} ms`,
      'idle-timeout': `closed a connection idle for ${this.limits.idleTimeoutMs} ms`,
      'request-timeout': `cut off a request whose body had not arrived within ${this.limits.requestTimeoutMs} ms`,
      'tls-error': 'a TLS handshake failed',
    }[ev];
    this.log(`${this.o.name}: ${what}`, {
      ...fields,
      event: ev,
      total,
      sinceLastLine: since,
      hint: warn ? `if these are legitimate clients, raise the limit (${LIMITS_ENV} or the listener's limits option); else find and block the source` : undefined,
    });
  }

  private log(msg: string, fields: Record<string, unknown>): void {
    if (!this.logFn) {
      const logger = createLogger('trustplane');
      this.logFn = (m, f) => logger.warn(f, m);
    }
    this.logFn(msg, fields);
  }
}

/** Name of the environment variable whose JSON (a ConnectionLimits) replaces the defaults of every listener in the process. */
export const LIMITS_ENV = 'TRUSTPLANE_CONNECTION_LIMITS';

/**
 * ConnectionLimits from TRUSTPLANE_CONNECTION_LIMITS, for processes whose listeners are not built by the caller (the
 * host's, the CA service's, in tests and tuning). Options given in code still win.
 */
export function limitsFromEnvironment(env: NodeJS.ProcessEnv = process.env): ConnectionLimits {
  const text = env[LIMITS_ENV];
  if (!text) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw invalid(`${LIMITS_ENV} is not JSON: ${(e as Error).message}`, `set it to an object such as {"handshakeTimeoutMs":10000,"maxPerSource":512}, or unset it`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw invalid(`${LIMITS_ENV} must be a JSON object`, 'for example {"idleTimeoutMs":65000}');
  const out: Record<string, number | boolean> = {};
  for (const [k, v] of Object.entries(parsed)) {
    if (!(k in DEFAULT_CONNECTION_LIMITS)) throw invalid(`${LIMITS_ENV} has an unknown field "${k}"`, `known fields: ${Object.keys(DEFAULT_CONNECTION_LIMITS).join(', ')}`);
    if (k === 'limitLoopback' ? typeof v !== 'boolean' : typeof v !== 'number' || !(v > 0)) {
      throw invalid(`${LIMITS_ENV}.${k} must be ${k === 'limitLoopback' ? 'true or false' : 'a positive number'}, not ${JSON.stringify(v)}`);
    }
    out[k] = v as number | boolean;
  }
  return out as ConnectionLimits;
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
