// The node agent's client of its cluster's API server: JSON over HTTPS, bearer token or client certificate, swappable credentials.
//
// Credentials are swapped without failing a request: each set lives in its own keep-alive agent, new requests take the
// newest, and a retired agent is destroyed only when its last request (or watch) has finished.
import { Agent, request, type RequestOptions } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { clientOptions, type MinVersion } from '../tls/policy.js';
import { TrustplaneError, reasonFromHttpStatus, type Reason } from '../util/errors.js';

export type ApiCredentials =
  /** Before the node has a certificate: the bootstrap token "<id>.<secret>". */
  | { token: string; ca: string }
  /** The kubelet client certificate (PEM leaf first) and its key. */
  | { cert: string; key: string; ca: string };

/** An error answer of the API server, with its HTTP code and Status reason. */
export class ApiRequestError extends TrustplaneError {
  constructor(
    reason: Reason,
    message: string,
    readonly code: number,
    readonly statusReason: string,
    hint?: string,
  ) {
    super(reason, message, hint);
    this.name = 'ApiRequestError';
  }
}

export const isApiError = (e: unknown, code: number): e is ApiRequestError => e instanceof ApiRequestError && e.code === code;

/** The TLS verification failures of node:tls that mean "this is not the server the CA vouches for". */
const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'INVALID_CA',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

export function isUntrustedServerError(e: unknown): boolean {
  return typeof (e as NodeJS.ErrnoException)?.code === 'string' && UNTRUSTED.has((e as NodeJS.ErrnoException).code!);
}

/** A transport failure as the error a user reads. */
export function connectionError(server: string, e: unknown): TrustplaneError {
  if (e instanceof TrustplaneError) return e;
  const err = e as NodeJS.ErrnoException;
  if (isUntrustedServerError(err)) {
    return new TrustplaneError(
      'Unauthorized',
      `the server at ${server} presents a TLS certificate that the cluster CA does not vouch for (${err.code}: ${err.message}): it is not this cluster's API server, or something on the way intercepts the connection`,
      'check --server: it must be the API server of the cluster whose CA hash you gave (`trustplane clusters describe CLUSTER` shows its endpoint)',
    );
  }
  return new TrustplaneError(
    'Unavailable',
    `cannot reach the API server at ${server}: ${err?.message ?? String(e)}`,
    'check --server and that the control plane is running and reachable from this machine (`trustplane clusters describe CLUSTER` shows the endpoint)',
  );
}

interface AgentSlot {
  agent: Agent;
  inflight: number;
  retired: boolean;
}

export interface ApiClientOptions {
  minVersion?: MinVersion;
  /** For one request (not a watch); default 30 s. */
  timeoutMs?: number;
  /** Default trustplane-node. */
  userAgent?: string;
  /** Called with the API server's trust header (X-Trustplane-Trust-Bundle) of every answer that has one. */
  onTrustHeader?: (value: string) => void;
}

export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'ERROR' | 'BOOKMARK';
  object: T;
}

export interface WatchHandle {
  /** Resolves when the stream ends (server timeout, cancel, or connection lost: then with the error). */
  readonly ended: Promise<Error | null>;
  cancel(): void;
}

function tlsOf(c: ApiCredentials, minVersion?: MinVersion) {
  const o = clientOptions({ cert: 'cert' in c ? c.cert : '', key: 'key' in c ? c.key : '', ca: c.ca, minVersion });
  if (!('cert' in c)) {
    delete (o as { cert?: unknown }).cert;
    delete (o as { key?: unknown }).key;
  }
  return o;
}

function statusError(code: number, text: string): ApiRequestError {
  let message = `the API server answered ${code}`;
  let statusReason = '';
  try {
    const s = JSON.parse(text) as { kind?: string; message?: string; reason?: string };
    if (s && s.kind === 'Status') {
      message = s.message || message;
      statusReason = s.reason ?? '';
    }
  } catch {
    if (text.trim()) message = `${message}: ${text.trim().slice(0, 200)}`;
  }
  return new ApiRequestError(reasonFromHttpStatus(code), message, code, statusReason);
}

export class ApiClient {
  /** The credential kind requests are made with now. */
  mode: 'token' | 'certificate' = 'token';
  private token: string | undefined;
  private slot: AgentSlot;
  private readonly slots = new Set<AgentSlot>();
  private closed = false;
  private readonly url: URL;

  constructor(
    readonly server: string,
    credentials: ApiCredentials,
    private readonly o: ApiClientOptions = {},
  ) {
    this.url = new URL(server);
    this.slot = this.newSlot(credentials);
  }

  private newSlot(c: ApiCredentials): AgentSlot {
    this.mode = 'cert' in c ? 'certificate' : 'token';
    const slot: AgentSlot = { agent: new Agent({ keepAlive: true, maxSockets: 16, ...tlsOf(c, this.o.minVersion) }), inflight: 0, retired: false };
    this.token = 'token' in c ? c.token : undefined;
    this.slots.add(slot);
    return slot;
  }

  /** New credentials for new requests; requests and watches in flight finish on the connections they have. */
  setCredentials(c: ApiCredentials): void {
    const old = this.slot;
    this.slot = this.newSlot(c);
    old.retired = true;
    this.release(old, 0);
  }

  private release(slot: AgentSlot, n: number): void {
    slot.inflight -= n;
    if (slot.retired && slot.inflight <= 0) {
      slot.agent.destroy();
      this.slots.delete(slot);
    }
  }

  /** Sends one request on the current credentials; resolves with the response, which the caller must consume. */
  private send(method: string, path: string, body: Buffer | undefined, accept: string, timeoutMs: number | undefined, onResponse: (res: IncomingMessage, done: () => void) => void, onError: (e: unknown) => void): () => void {
    if (this.closed) {
      onError(new TrustplaneError('Unavailable', 'the API client is closed'));
      return () => undefined;
    }
    const slot = this.slot;
    slot.inflight++;
    let released = false;
    const done = () => {
      if (released) return;
      released = true;
      this.release(slot, 1);
    };
    const opts: RequestOptions = {
      method,
      host: this.url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: this.url.port || 443,
      path,
      agent: slot.agent,
      headers: {
        Accept: accept,
        'User-Agent': this.o.userAgent ?? 'trustplane-node',
        ...(body ? { 'Content-Type': 'application/json', 'Content-Length': String(body.length) } : {}),
        ...(this.token ? { Authorization: `Bearer ${this.token}` } : {}),
      },
    };
    const req = request(opts, (res) => {
      const trust = res.headers['x-trustplane-trust-bundle'];
      if (typeof trust === 'string') this.o.onTrustHeader?.(trust);
      onResponse(res, done);
    });
    req.on('error', (e) => {
      done();
      onError(e);
    });
    if (timeoutMs) req.setTimeout(timeoutMs, () => req.destroy(new TrustplaneError('Timeout', `the API server at ${this.server} did not answer ${method} ${path.split('?')[0]} within ${timeoutMs} ms`)));
    req.end(body);
    return () => req.destroy();
  }

  request<T>(method: string, path: string, body?: unknown, timeoutMs = this.o.timeoutMs ?? 30_000): Promise<T> {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise<T>((resolve, reject) => {
      this.send(
        method,
        path,
        data,
        'application/json',
        timeoutMs,
        (res, done) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (e) => {
            done();
            reject(connectionError(this.server, e));
          });
          res.on('end', () => {
            done();
            const text = Buffer.concat(chunks).toString('utf8');
            const code = res.statusCode ?? 0;
            if (code >= 400 || code === 0) return reject(statusError(code, text));
            try {
              resolve(JSON.parse(text) as T);
            } catch {
              reject(new TrustplaneError('Internal', `the API server answered ${method} ${path.split('?')[0]} with a body that is not JSON`));
            }
          });
        },
        (e) => reject(connectionError(this.server, e)),
      );
    });
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }
  post<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('POST', path, body);
  }
  put<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PUT', path, body);
  }

  /**
   * A GET whose body is read as it arrives (a node's log, followed or not): resolves with the response once it is a
   * success; the caller consumes it (or destroys it to stop). Error answers reject as `request` does.
   */
  stream(path: string, accept = '*/*'): Promise<IncomingMessage> {
    return new Promise<IncomingMessage>((resolve, reject) => {
      this.send(
        'GET',
        path,
        undefined,
        accept,
        undefined,
        (res, done) => {
          res.once('close', done);
          const code = res.statusCode ?? 0;
          if (code >= 200 && code < 300) return resolve(res);
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => reject(statusError(code, Buffer.concat(chunks).toString('utf8'))));
          res.on('error', (e) => reject(connectionError(this.server, e)));
        },
        (e) => reject(connectionError(this.server, e)),
      );
    });
  }

  /** A watch (`path` carries ?watch=true and its selectors): one callback per event line until the stream ends. */
  watch<T>(path: string, onEvent: (ev: WatchEvent<T>) => void): WatchHandle {
    let resolveEnded!: (e: Error | null) => void;
    const ended = new Promise<Error | null>((r) => (resolveEnded = r));
    let finished = false;
    const finish = (e: Error | null) => {
      if (finished) return;
      finished = true;
      resolveEnded(e);
    };
    let canceled = false;
    const abort = this.send(
      'GET',
      path,
      undefined,
      'application/json',
      undefined,
      (res, done) => {
        const code = res.statusCode ?? 0;
        if (code !== 200) {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            done();
            finish(statusError(code, Buffer.concat(chunks).toString('utf8')));
          });
          res.on('error', () => {
            done();
            finish(statusError(code, ''));
          });
          return;
        }
        let buffered = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buffered += chunk;
          let nl: number;
          while ((nl = buffered.indexOf('\n')) >= 0) {
            const line = buffered.slice(0, nl).trim();
            buffered = buffered.slice(nl + 1);
            if (!line) continue;
            try {
              onEvent(JSON.parse(line) as WatchEvent<T>);
            } catch (e) {
              res.destroy(e as Error);
              return;
            }
          }
        });
        const end = (e: Error | null) => {
          done();
          finish(canceled ? null : e);
        };
        res.on('end', () => end(null));
        res.on('error', (e) => end(e));
        res.on('close', () => end(res.complete ? null : new TrustplaneError('Unavailable', 'the watch connection was lost')));
      },
      (e) => finish(canceled ? null : connectionError(this.server, e)),
    );
    return {
      ended,
      cancel() {
        canceled = true;
        abort();
        finish(null);
      },
    };
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    this.closed = true;
    for (const s of this.slots) s.agent.destroy();
    this.slots.clear();
  }
}
