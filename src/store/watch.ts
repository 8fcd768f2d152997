// Prefix watches over one shared Watch stream, resumed on another endpoint from the next undelivered revision after a failure.
import type { IDuplexStream, IWatchRequest, IWatchResponse } from 'etcd3';
import { TrustplaneError } from '../util/errors.js';
import { endStream, type Endpoint, type EndpointPool } from './endpoints.js';
import { describeFailure, StoreCompactedError } from './errors.js';
import { eventFromWire, type Revision, type WatchEvent } from './types.js';

export interface WatchOptions {
  /** Deliver changes from this revision on (history included); by default, changes after the watch is created. */
  startRevision?: Revision;
  /** Include each key's previous state in its events. */
  prevKv?: boolean;
}

export interface StoreWatch {
  /** Stop the watch; no event is delivered after this resolves. */
  cancel(): Promise<void>;
  /**
   * Resolves when the watch ends: null after cancel() or close(), or the error that ended it — a StoreCompactedError
   * when the history it needs is gone (re-read, then watch again), or the error the event handler threw.
   */
  readonly ended: Promise<TrustplaneError | null>;
  /** The first revision not yet delivered: where a new watch would resume. */
  nextRevision(): Revision | undefined;
}

type Stream = IDuplexStream<IWatchRequest, IWatchResponse>;

interface Watcher {
  key: Buffer;
  rangeEnd: Buffer;
  prevKv: boolean;
  /** First revision not yet delivered; undefined until the server tells the current revision. */
  next?: Revision;
  /** The server's id for this watch on the current stream. */
  id: string | null;
  onEvent(ev: WatchEvent): void;
  ready: { resolve(): void; reject(e: TrustplaneError): void; settled: boolean; deadline: number };
  end(e: TrustplaneError | null): void;
  ended: boolean;
}

/** One Watch stream for all of a client's watches, as etcd's own client does; watches are created one at a time. */
export class WatchHub {
  private stream?: Stream;
  private streamEp?: Endpoint;
  private connecting = false;
  private watchers = new Set<Watcher>();
  private byId = new Map<string, Watcher>();
  /** Watches waiting to be created on the current stream, in order; the head is in flight once `creating` is set. */
  private queue: Watcher[] = [];
  private creating?: Watcher;
  private failures = 0;
  private retryTimer?: NodeJS.Timeout;

  constructor(private readonly pool: EndpointPool) {}

  async watch(key: Buffer, rangeEnd: Buffer, o: WatchOptions, onEvent: (ev: WatchEvent) => void): Promise<StoreWatch> {
    let resolveEnded!: (e: TrustplaneError | null) => void;
    const ended = new Promise<TrustplaneError | null>((r) => (resolveEnded = r));
    let resolveReady!: () => void;
    let rejectReady!: (e: TrustplaneError) => void;
    const readyP = new Promise<void>((res, rej) => {
      resolveReady = res;
      rejectReady = rej;
    });
    const w: Watcher = {
      key,
      rangeEnd,
      prevKv: o.prevKv ?? false,
      next: o.startRevision,
      id: null,
      onEvent,
      ready: {
        resolve: () => ((w.ready.settled = true), resolveReady()),
        reject: (e) => ((w.ready.settled = true), rejectReady(e)),
        settled: false,
        deadline: Date.now() + this.pool.timeoutMs,
      },
      ended: false,
      end: (e) => {
        if (w.ended) return;
        w.ended = true;
        this.detach(w);
        if (!w.ready.settled) w.ready.reject(e ?? new TrustplaneError('Unavailable', 'store watch: canceled before it was created'));
        resolveEnded(e);
      },
    };
    this.watchers.add(w);
    this.queue.push(w);
    // A watch the store never confirms fails after the call budget; a stream stuck on its create is replaced.
    const createTimer = setTimeout(() => {
      if (w.ready.settled) return;
      if (this.creating === w && this.streamEp) {
        this.streamFailed(this.streamEp, new Error(`4 DEADLINE_EXCEEDED: watch not created within ${this.pool.timeoutMs} ms`));
      } else {
        w.end(new TrustplaneError('Timeout', `store watch: not created within ${this.pool.timeoutMs} ms`, 'check that the store is running and reachable'));
      }
    }, this.pool.timeoutMs + 10);
    this.pump();
    try {
      await readyP;
    } finally {
      clearTimeout(createTimer);
    }
    return {
      cancel: async () => w.end(null),
      ended,
      nextRevision: () => w.next,
    };
  }

  close(): void {
    for (const w of [...this.watchers]) w.end(null);
    this.dropStream();
    clearTimeout(this.retryTimer);
  }

  /** Stop routing events to `w` and tell the server, if it has an id there. */
  private detach(w: Watcher): void {
    this.watchers.delete(w);
    this.queue = this.queue.filter((q) => q !== w);
    if (w.id !== null) {
      this.byId.delete(w.id);
      try {
        this.stream?.write({ cancel_request: { watch_id: w.id } });
      } catch {
        /* the stream is going away anyway */
      }
      w.id = null;
    }
    if (this.watchers.size === 0) this.dropStream();
  }

  /** Make progress: open a stream if one is needed, else send the next create request. */
  private pump(): void {
    if (this.watchers.size === 0 || this.pool.isClosed) return;
    if (!this.stream) {
      if (!this.connecting && !this.retryTimer) void this.connect();
      return;
    }
    if (this.creating || this.queue.length === 0) return;
    const w = this.queue[0];
    this.creating = w;
    this.stream.write({
      create_request: {
        key: w.key,
        range_end: w.rangeEnd,
        start_revision: w.next === undefined ? 0 : w.next.toString(),
        prev_kv: w.prevKv,
        // Quiet watches learn the current revision too, so a resumed watch does not start below a compaction.
        progress_notify: true,
      },
    });
  }

  private async connect(): Promise<void> {
    this.connecting = true;
    const ep = this.pool.pick();
    let stream: Stream;
    try {
      stream = await ep.etcd.watchClient.watch();
    } catch (e) {
      this.connecting = false;
      this.streamFailed(ep, e);
      return;
    }
    this.connecting = false;
    if (this.watchers.size === 0 || this.pool.isClosed) {
      endStream(stream);
      return;
    }
    this.stream = stream;
    this.streamEp = ep;
    stream.on('data', (r: IWatchResponse) => this.stream === stream && this.onResponse(r));
    stream.on('error', (e: Error) => this.stream === stream && this.streamFailed(ep, e));
    stream.on('end', () => this.stream === stream && this.streamFailed(ep, new Error('14 UNAVAILABLE: watch stream ended by the server')));
    this.pump();
  }

  private onResponse(r: IWatchResponse): void {
    this.failures = 0;
    if (this.streamEp) this.pool.markUp(this.streamEp);
    if (r.created) {
      const w = this.creating;
      this.creating = undefined;
      if (!w) return; // a created response for a watch already canceled locally
      this.queue = this.queue.filter((q) => q !== w);
      if (r.canceled) {
        w.end(new TrustplaneError('BadRequest', `store watch at ${this.streamEp?.url}: ${r.cancel_reason || 'refused'}`));
      } else if (w.ended) {
        this.stream?.write({ cancel_request: { watch_id: r.watch_id } });
      } else {
        w.id = r.watch_id;
        this.byId.set(r.watch_id, w);
        if (w.next === undefined) w.next = BigInt(r.header.revision) + 1n;
        w.ready.resolve();
      }
      this.pump();
      return;
    }
    const w = this.byId.get(r.watch_id);
    if (!w) return; // events or a cancel confirmation for a watch we dropped
    if (r.canceled) {
      const compact = BigInt(r.compact_revision || '0');
      const url = this.streamEp?.url ?? '?';
      w.end(
        compact > 0n
          ? new StoreCompactedError(url, w.next, compact)
          : new TrustplaneError('Unavailable', `store watch at ${url} was canceled by the server: ${r.cancel_reason || 'no reason given'}`, 'watch again'),
      );
      return;
    }
    if (r.events.length === 0) {
      // A progress notification: every change up to the header revision has been delivered.
      const rev = BigInt(r.header.revision) + 1n;
      if (w.next === undefined || rev > w.next) w.next = rev;
      return;
    }
    for (const raw of r.events) {
      if (w.ended) return;
      const ev = eventFromWire(raw);
      try {
        w.onEvent(ev);
      } catch (e) {
        w.end(new TrustplaneError('Internal', `store watch handler failed: ${(e as Error)?.message ?? e}`));
        return;
      }
      w.next = ev.revision + 1n;
    }
  }

  /** The stream broke: mark its endpoint, then re-create every live watch on a new stream from its next revision. */
  private streamFailed(ep: Endpoint, e: unknown): void {
    const f = describeFailure(e);
    if (f.code === 1 /* CANCELLED by us */ && this.watchers.size === 0) return;
    this.pool.markDown(ep, f.details);
    this.dropStream();
    const now = Date.now();
    for (const w of [...this.watchers]) {
      if (!w.ready.settled && now > w.ready.deadline) {
        w.end(new TrustplaneError('Unavailable', `store watch: no endpoint answered (${ep.url}: ${f.details})`, 'check that the store is running and reachable'));
      }
    }
    // Every live watch is created again, oldest first, from the revision after the last it delivered.
    this.queue = [...this.watchers];
    const pause = Math.min(100 * 2 ** this.failures++, 2000);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.pump();
    }, pause);
  }

  private dropStream(): void {
    const s = this.stream;
    this.stream = undefined;
    this.streamEp = undefined;
    this.creating = undefined;
    for (const w of this.watchers) w.id = null;
    this.byId.clear();
    if (s) {
      endStream(s);
    }
  }
}
