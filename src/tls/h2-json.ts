// JSON over HTTP/2 with mutual TLS: the one client and the server helpers shared by the CA service and the fleet API.
import http2 from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { ListenerGuard, type ConnectionLimits, type GuardStats } from './listener-guard.js';
import { clientOptions, serverOptions, type MinVersion } from './policy.js';
import { TrustplaneError, invalid, isReason } from '../util/errors.js';

export interface ErrorBody {
  error: { reason: string; message: string; hint?: string };
}

export interface H2JsonClientOptions {
  url: string;
  /** The caller's certificate and key (PEM). */
  cert: string;
  key: string;
  /** The server's CA (PEM). */
  ca: string;
  minVersion?: MinVersion;
  timeoutMs?: number;
}

/** What the client calls the server in messages, and what to check when it does not answer. */
export interface ServiceLabel {
  name: string;
  hint: string;
}

/** One kept-alive HTTP/2 session; errors come back as TrustplaneError with the server's reason. */
export class H2JsonClient {
  private session: http2.ClientHttp2Session | undefined;

  constructor(
    protected readonly o: H2JsonClientOptions,
    private readonly label: ServiceLabel,
  ) {}

  private connect(): http2.ClientHttp2Session {
    if (this.session && !this.session.closed && !this.session.destroyed) return this.session;
    const s = http2.connect(this.o.url, { ...clientOptions({ cert: this.o.cert, key: this.o.key, ca: this.o.ca, minVersion: this.o.minVersion }) });
    s.on('error', () => undefined); // surfaced per request
    s.on('close', () => {
      if (this.session === s) this.session = undefined;
    });
    // The server closes idle sessions with a GOAWAY: new requests go on a new session from then on.
    s.on('goaway', () => {
      if (this.session === s) this.session = undefined;
    });
    s.unref();
    this.session = s;
    return s;
  }

  async request<T>(method: string, path: string, body?: unknown, timeoutMs?: number): Promise<T> {
    try {
      return await this.requestOnce<T>(method, path, body, timeoutMs);
    } catch (e) {
      // A stream the server refused (sent as its GOAWAY for an idle session crossed it) was never processed: safe to send again once.
      if (!(e instanceof RefusedStream)) throw e;
      return this.requestOnce<T>(method, path, body, timeoutMs).catch((again: unknown) => {
        throw again instanceof RefusedStream ? again.error : again;
      });
    }
  }

  private async requestOnce<T>(method: string, path: string, body?: unknown, timeoutMs?: number): Promise<T> {
    const s = this.connect();
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const where = `${this.label.name} at ${this.o.url}`;
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
        reject(new TrustplaneError('Unavailable', `${where}: ${(e as Error).message}`, this.label.hint));
        return;
      }
      s.ref();
      const timer = setTimeout(() => req.close(http2.constants.NGHTTP2_CANCEL), timeoutMs ?? this.o.timeoutMs ?? 30000);
      let status = 0;
      const chunks: Buffer[] = [];
      req.on('response', (h) => (status = Number(h[':status'])));
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        const error = new TrustplaneError('Unavailable', `${where} is unreachable: ${e.message}`, this.label.hint);
        const refused = e.code === 'ERR_HTTP2_GOAWAY_SESSION' || req.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM;
        reject(refused && status === 0 ? new RefusedStream(error) : error);
      });
      req.on('close', () => {
        clearTimeout(timer);
        if (this.session) this.session.unref();
        if (status === 0) {
          reject(new TrustplaneError('Unavailable', `${where} gave no answer (connection refused, timed out or credentials rejected)`, this.label.hint));
          return;
        }
        let parsed: unknown;
        try {
          parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          reject(new TrustplaneError('Internal', `${where} answered ${status} with a body that is not JSON`));
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

  close(): void {
    this.session?.close();
    this.session = undefined;
  }
}

/** A request the server never processed, with the error to report if sending it again fails the same way. */
class RefusedStream extends Error {
  constructor(readonly error: TrustplaneError) {
    super(error.message);
  }
}

export function readJsonBody(req: http2.Http2ServerRequest, maxBytes: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > maxBytes) {
        reject(new TrustplaneError('RequestEntityTooLarge', `request body exceeds ${maxBytes} bytes`));
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

export function sendJson(res: http2.Http2ServerResponse, status: number, body: unknown): void {
  const data = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': data.length });
  res.end(data);
}

export function errorBody(e: unknown, service: string): { status: number; body: ErrorBody } {
  if (e instanceof TrustplaneError) return { status: e.httpStatus, body: { error: { reason: e.reason, message: e.message, hint: e.hint } } };
  return { status: 500, body: { error: { reason: 'Internal', message: `internal error in the ${service} (see its log)` } } };
}

export function asObject(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid(`${what} must be a JSON object`);
  return v as Record<string, unknown>;
}

export interface H2JsonServerOptions<C> {
  host: string;
  port: number;
  cert: string;
  key: string;
  /** Client certificates must chain to this (PEM). */
  clientCa: string;
  minVersion?: MinVersion;
  maxBodyBytes: number;
  service: string;
  /** Who is calling, from the verified peer certificate's subject; throws to refuse. Cached per session. */
  identify(subject: Record<string, string | string[] | undefined>): C;
  route(caller: C, method: string, parts: string[], body: () => Promise<unknown>, url: URL): Promise<[number, unknown]>;
  /** Runs before every answer, error or not (the CA flushes its audit log here). */
  beforeAnswer?(): void;
  /** Sees every identified request before it is routed, with its connection (the CA records observed clients here). */
  observe?(caller: C, socket: TLSSocket, parts: string[]): void;
  /** Handshake and idle timeouts, connection caps; defaults in DEFAULT_CONNECTION_LIMITS. */
  limits?: ConnectionLimits;
  log?: (msg: string, fields: Record<string, unknown>) => void;
}

export interface RunningH2JsonServer {
  url: string;
  port: number;
  /** Connections open now and what the listener guard refused or closed. */
  connectionStats(): GuardStats;
  close(): Promise<void>;
}

/** An HTTP/2 JSON server that requires a client certificate from clientCa and answers errors as ErrorBody. */
export function startH2JsonServer<C>(o: H2JsonServerOptions<C>): Promise<RunningH2JsonServer> {
  const guard = new ListenerGuard({ name: o.service, limits: o.limits, tls: true, requests: 'http', log: o.log });
  const server = http2.createSecureServer({
    ...serverOptions({ cert: o.cert, key: o.key, ca: o.clientCa, clientCert: 'require', minVersion: o.minVersion }),
    ...guard.serverOptions(),
    allowHTTP1: false,
  });
  guard.attach(server);
  const identities = new WeakMap<object, C>();
  const identify = (req: http2.Http2ServerRequest): C => {
    const session = req.stream.session;
    const cached = session && identities.get(session);
    if (cached) return cached;
    const socket = req.socket as TLSSocket;
    // rejectUnauthorized already refused unknown issuers at the handshake; this guards against misconfiguration.
    if (!socket.authorized) throw new TrustplaneError('Unauthorized', `a client certificate trusted by the ${o.service} is required`);
    const id = o.identify(socket.getPeerCertificate().subject as unknown as Record<string, string>);
    if (session) identities.set(session, id);
    return id;
  };
  server.on('request', (req, res) => {
    void (async () => {
      try {
        const caller = identify(req);
        const url = new URL(req.url, 'https://service.invalid');
        const parts = url.pathname.split('/').filter(Boolean);
        o.observe?.(caller, (req.stream.session?.socket ?? req.socket) as TLSSocket, parts);
        const [status, body] = await o.route(caller, req.method, parts, () => readJsonBody(req, o.maxBodyBytes), url);
        o.beforeAnswer?.();
        sendJson(res, status, body);
      } catch (e) {
        o.beforeAnswer?.();
        const { status, body } = errorBody(e, o.service);
        if (!res.headersSent && !res.stream.destroyed) sendJson(res, status, body);
      }
    })();
  });
  // A TLS failure (no client cert, wrong CA, TLS < 1.2) never reaches a handler; nothing to answer.
  server.on('sessionError', () => undefined);
  server.on('tlsClientError', () => undefined);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      const port = (server.address() as { port: number }).port;
      const h = o.host.includes(':') ? `[${o.host}]` : o.host;
      resolve({
        url: `https://${h}:${port}`,
        port,
        connectionStats: () => guard.stats(),
        close: () =>
          new Promise<void>((r) => {
            for (const s of sessions) s.close();
            server.close(() => r());
            // Handshakes in progress hold no session; they go now.
            guard.closeIdle();
            setTimeout(() => {
              for (const s of sessions) s.destroy();
              guard.destroyAll();
            }, 2000).unref();
          }),
      });
    });
  });
}
