// One store watch per resource, shared by every watcher of it in this process: each change is decoded once, kept for a
// while, and fanned out in memory, as kube-apiserver's watch cache does. N watchers cost the store one watch, not N.
import type { Store, StoreWatch, WatchEvent } from '../../store/client.js';
import { TrustplaneError } from '../../util/errors.js';
import type { ObjectEvent, ObjectWatch } from './object-store.js';

/** Changes kept for watches that start a little in the past (a client watching from its create's resourceVersion). */
const DEFAULT_CAPACITY = 1024;

interface Listener<T> {
  /** Only changes after this revision: a watcher may start ahead of what the feed has received so far. */
  after: bigint;
  /** Sequence number of the last event handed to it: an event is delivered once, whichever path reaches it first. */
  seen: number;
  onEvent(ev: ObjectEvent<T>): void;
  end(e: TrustplaneError | null): void;
}

interface Cached<T> {
  seq: number;
  ev: ObjectEvent<T>;
}

/** One store watch and what it delivered; replaced by a new one after it ends or when nobody listens any more. */
interface Feed<T> {
  watch?: StoreWatch;
  ready: Promise<void>;
  /** Every change from this revision on is in `events` or still to come. */
  oldest: bigint;
  /** events[head..] are live; the array is trimmed in chunks rather than shifted per event. */
  events: Cached<T>[];
  head: number;
  listeners: Set<Listener<T>>;
  ended: boolean;
}

export interface WatchCacheOptions<T> {
  store: Store;
  prefix: string;
  /** The store change as the object event watchers get; null for changes that are not sent (a delete without prevKv). */
  decode(ev: WatchEvent): ObjectEvent<T> | null;
  /** Why the shared store watch ended, as each watcher sees it (410 Expired for a compacted revision). */
  failure(e: unknown): TrustplaneError;
  capacity?: number;
}

/**
 * Objects handed to watchers are shared between them: watchers read them and never change them. A watch from a
 * revision older than the cache holds is not served here (watch() answers undefined) and goes to the store itself.
 */
export class WatchCache<T> {
  private feed?: Feed<T>;
  private seq = 0;
  private readonly capacity: number;

  constructor(private readonly o: WatchCacheOptions<T>) {
    this.capacity = o.capacity ?? DEFAULT_CAPACITY;
  }

  /** Every change after revision `after`, in store order; undefined when the cache cannot serve it. */
  async watch(after: bigint, onEvent: (ev: ObjectEvent<T>) => void): Promise<ObjectWatch | undefined> {
    let feed = this.feed;
    if (!feed || feed.ended) feed = this.feed = this.open(after + 1n);
    await feed.ready;
    if (feed.ended || after + 1n < feed.oldest) return undefined;

    let resolveEnded!: (e: TrustplaneError | null) => void;
    const ended = new Promise<TrustplaneError | null>((r) => (resolveEnded = r));
    const f = feed;
    const l: Listener<T> = {
      after,
      seen: 0,
      onEvent,
      end: (e) => {
        if (!f.listeners.delete(l)) return;
        resolveEnded(e);
        if (f.listeners.size === 0) this.close(f);
      },
    };
    f.listeners.add(l);
    // What the feed already holds after `after`, then live: both in this turn, so nothing can come between.
    for (let i = this.firstAfter(f, after); i < f.events.length && f.listeners.has(l); i++) this.deliver(l, f.events[i]);
    l.seen = this.seq;
    return { cancel: async () => l.end(null), ended };
  }

  private open(start: bigint): Feed<T> {
    const f: Feed<T> = { ready: Promise.resolve(), oldest: start, events: [], head: 0, listeners: new Set(), ended: false };
    f.ready = this.o.store.watchPrefix(this.o.prefix, { startRevision: start, prevKv: true }, (raw) => this.onChange(f, raw)).then(
      (w) => {
        f.watch = w;
        if (f.ended) void w.cancel();
        void w.ended.then((e) => this.fail(f, e === null ? null : this.o.failure(e)));
      },
      (e: unknown) => {
        f.ended = true;
        if (this.feed === f) this.feed = undefined;
        throw this.o.failure(e);
      },
    );
    return f;
  }

  private onChange(f: Feed<T>, raw: WatchEvent): void {
    const ev = this.o.decode(raw);
    if (!ev || f.ended) return;
    const c: Cached<T> = { seq: ++this.seq, ev };
    f.events.push(c);
    if (f.events.length - f.head > this.capacity) {
      // Dropping a change: watches from before it can no longer be served here.
      f.oldest = f.events[f.head].ev.revision + 1n;
      f.head++;
      if (f.head >= this.capacity) {
        f.events = f.events.slice(f.head);
        f.head = 0;
      }
    }
    for (const l of f.listeners) this.deliver(l, c);
  }

  private deliver(l: Listener<T>, c: Cached<T>): void {
    if (c.seq <= l.seen) return;
    l.seen = c.seq;
    if (c.ev.revision <= l.after) return;
    try {
      l.onEvent(c.ev);
    } catch (e) {
      // As a store watch whose handler throws: that watcher ends, the others go on.
      l.end(new TrustplaneError('Internal', `store watch handler failed: ${(e as Error)?.message ?? e}`));
    }
  }

  /** Index of the first held event with a revision above `after`. */
  private firstAfter(f: Feed<T>, after: bigint): number {
    let lo = f.head;
    let hi = f.events.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (f.events[mid].ev.revision <= after) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The store watch ended: every watcher of this feed ends with it (and lists again, if it is an informer). */
  private fail(f: Feed<T>, e: TrustplaneError | null): void {
    if (f.ended && f.listeners.size === 0) return;
    f.ended = true;
    if (this.feed === f) this.feed = undefined;
    for (const l of [...f.listeners]) l.end(e);
  }

  /** Nobody listens: stop the store watch; the next watcher starts another from its own revision. */
  private close(f: Feed<T>): void {
    f.ended = true;
    if (this.feed === f) this.feed = undefined;
    void f.watch?.cancel();
  }
}
