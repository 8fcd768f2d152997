// The store's endpoints and the one retry rule: try the preferred endpoint, fail over to the next, until the call's deadline.
import { Etcd3, type IOptions } from 'etcd3';
import { TrustplaneError } from '../util/errors.js';
import { describeFailure, StoreInDoubtError, tlsTrouble, toTrustplaneError, type CallFailure } from './errors.js';

export interface StoreTls {
  /** PEM client certificate chain presented to the store. */
  cert: string | Buffer;
  /** PEM private key of `cert`. */
  key: string | Buffer;
  /** PEM CA(s) that verify the store's server certificates. */
  ca: string | Buffer;
}

export interface Endpoint {
  url: string;
  /** An etcd3 client bound to this endpoint alone, so that every failure is known by its endpoint. */
  etcd: Etcd3;
  /** Not tried before this time (ms since epoch) unless every endpoint is down. */
  downUntil: number;
  lastFailure?: string;
}

/**
 * When a failed call may be sent again:
 * 'idempotent': after any transport failure (reads, and writes whose repetition leaves the same state);
 * 'not-in-doubt': only when the request surely was not applied (compare-and-swap transactions).
 */
export type RetryRule = 'idempotent' | 'not-in-doubt';

type Policies = NonNullable<IOptions['faultHandling']>;
type Policy = NonNullable<Policies['global']>;

/**
 * etcd3's own fault handling (a circuit breaker per host, three retries over random hosts) would hide which endpoint
 * failed and retry compare-and-swap calls whose outcome is unknown; this pool does both itself, so etcd3 gets pass-throughs.
 */
/** Never aborted, and etcd3 never listens to it: one for every call (an AbortController per call cost ~10 µs). */
const NO_ABORT: AbortSignal = new AbortController().signal;

const passThrough = {
  execute: <T>(fn: (ctx: { signal: AbortSignal }) => PromiseLike<T> | T) => Promise.resolve().then(() => fn({ signal: NO_ABORT })),
  onSuccess: () => ({ dispose() {} }),
  onFailure: () => ({ dispose() {} }),
} as unknown as Policy;

const COOLDOWN_MS = 1000;

/** An etcd3 client bound to one endpoint, with these credentials. */
function connect(url: string, tls: StoreTls): Etcd3 {
  return new Etcd3({
    hosts: [url],
    credentials: { rootCertificate: Buffer.from(tls.ca), privateKey: Buffer.from(tls.key), certChain: Buffer.from(tls.cert) },
    faultHandling: { host: () => passThrough, global: passThrough },
    grpcOptions: {
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      // A fresh subchannel per client, so a restarted member is dialed at once, not after a shared backoff.
      'grpc.use_local_subchannel_pool': 1,
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 2000,
      // Find a silently dead member (no RST) under a long-lived watch; etcd allows pings every 5 s.
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
    },
  });
}

/**
 * Ends a stream this client no longer wants. Half-closing first matters: etcd3 treats an error on a stream that is
 * still writable — the CANCELLED a bare cancel() raises — as a failed host, and closes every channel to it.
 */
export function endStream(s: { end(): void; cancel(): void }): void {
  try {
    s.end();
  } catch {
    /* already ended */
  }
  s.cancel();
}

export class EndpointPool {
  readonly endpoints: Endpoint[];
  private preferred = 0;
  private closed = false;
  /** Connections replaced by setTls, closed when their grace period ends (or with the pool). */
  private readonly retired = new Map<NodeJS.Timeout, Etcd3[]>();

  constructor(
    urls: string[],
    tls: StoreTls,
    /** Budget for one call, all attempts included. */
    readonly timeoutMs: number,
  ) {
    if (urls.length === 0) throw new TrustplaneError('Invalid', 'no store endpoints given', 'pass at least one https://host:port endpoint');
    for (const url of urls) {
      if (!/^https:\/\/[^/]+$/.test(url)) {
        throw new TrustplaneError('Invalid', `store endpoint "${url}" is not of the form https://host:port`, 'the store is reached over TLS only');
      }
    }
    this.endpoints = urls.map((url) => ({ url, etcd: connect(url, tls), downUntil: 0 }));
  }

  /**
   * New client credentials (a rotation of the etcd API CA): calls from now on go over new connections made with them.
   * The old connections are closed after `graceMs`, when calls in flight on them have finished; watches on them end
   * then and resume on the new ones from their next revision, as after any endpoint failure.
   */
  setTls(tls: StoreTls, graceMs = 5000): void {
    if (this.closed) return;
    const old = this.endpoints.map((ep) => ep.etcd);
    for (const ep of this.endpoints) ep.etcd = connect(ep.url, tls);
    const t = setTimeout(() => {
      this.retired.delete(t);
      for (const e of old) e.close();
    }, graceMs);
    this.retired.set(t, old);
  }

  /** The endpoint to use now: the preferred one unless it is cooling down after a failure. */
  pick(): Endpoint {
    const now = Date.now();
    const n = this.endpoints.length;
    for (let i = 0; i < n; i++) {
      const ep = this.endpoints[(this.preferred + i) % n];
      if (ep.downUntil <= now) return ep;
    }
    return this.endpoints.reduce((a, b) => (b.downUntil < a.downUntil ? b : a));
  }

  markUp(ep: Endpoint): void {
    ep.downUntil = 0;
    ep.lastFailure = undefined;
    this.preferred = this.endpoints.indexOf(ep);
  }

  markDown(ep: Endpoint, why: string): void {
    ep.downUntil = Date.now() + COOLDOWN_MS;
    ep.lastFailure = why;
    if (this.endpoints[this.preferred] === ep) this.preferred = (this.preferred + 1) % this.endpoints.length;
  }

  /**
   * Runs `fn` on one endpoint after another until one answers. An answer that is an error (bad input, a missing lease,
   * a compacted revision) is thrown at once as a TrustplaneError naming the endpoint; transport failures move on to the
   * next endpoint, and once the budget is spent the call fails Unavailable (or Timeout) naming every endpoint tried.
   */
  async call<T>(op: string, retry: RetryRule, fn: (ep: Endpoint, deadline: Date) => Promise<T>, onAnswered?: (f: CallFailure, ep: Endpoint) => TrustplaneError): Promise<T> {
    if (this.closed) throw new TrustplaneError('Unavailable', `store ${op}: the store client is closed`);
    const start = Date.now();
    const deadline = start + this.timeoutMs;
    const tried = new Map<string, { details: string; code?: number }>();
    let round = 0;
    let sinceRound = 0;
    for (;;) {
      // An attempt with almost no time left would only fail on its deadline and hide the real failure.
      if (tried.size > 0 && deadline - Date.now() < 50) throw this.unavailable(op, tried, Date.now() - start);
      const ep = this.pick();
      const now = Date.now();
      // With other endpoints to try, one attempt may not spend the whole budget on a member that hangs.
      const attemptDeadline = this.endpoints.length > 1 ? Math.min(deadline, now + Math.max(1000, (deadline - now) / 2)) : deadline;
      try {
        const r = await fn(ep, new Date(attemptDeadline));
        this.markUp(ep);
        return r;
      } catch (e) {
        const f = describeFailure(e);
        if (f.kind === 'answered') throw onAnswered ? onAnswered(f, ep) : toTrustplaneError(op, ep.url, f);
        tried.set(ep.url, { details: f.details, code: f.code });
        this.markDown(ep, f.details);
        if (f.kind === 'in-doubt' && retry === 'not-in-doubt') {
          throw new StoreInDoubtError(
            `store ${op} at ${ep.url}: ${f.details}; the change may or may not have been applied`,
            're-read the key to see whether it was applied before trying again',
          );
        }
        if (this.closed) throw new TrustplaneError('Unavailable', `store ${op}: the store client was closed`);
        // After trying each endpoint once, back off a little before the next round.
        if (++sinceRound >= this.endpoints.length) {
          sinceRound = 0;
          const pause = Math.min(50 * 2 ** round++, 500, Math.max(0, deadline - Date.now()));
          await new Promise((r) => setTimeout(r, pause));
        }
      }
    }
  }

  private unavailable(op: string, tried: Map<string, { details: string; code?: number }>, elapsed: number): TrustplaneError {
    const list = [...tried].map(([url, why]) => `${url} (${why.details})`).join('; ');
    if ([...tried.values()].every((t) => t.code === 4)) {
      return new TrustplaneError('Timeout', `store ${op} timed out after ${elapsed} ms: ${list}`, 'the store is slow or has lost its leader; retry, or raise the store timeout');
    }
    const tls = [...tried.values()].map((t) => tlsTrouble(t.details)).find((x) => x);
    return new TrustplaneError(
      'Unavailable',
      `store ${op}: no endpoint answered within ${elapsed} ms: ${list}`,
      tls ?? 'check that the store is running and reachable at the configured endpoints, and that the client certificate and CA are the ones it expects',
    );
  }

  close(): void {
    this.closed = true;
    for (const ep of this.endpoints) ep.etcd.close();
    for (const [t, old] of this.retired) {
      clearTimeout(t);
      for (const e of old) e.close();
    }
    this.retired.clear();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}
