// Delivers history to watchers: live events after each commit, or catch-up from SQLite for watchers behind.
import { inRange, type KeyRange } from './key-range.js';
import type { MvccStore } from './mvcc.js';
import type { KeyValue, ResponseHeader, StoreEvent } from './types.js';

export interface WireEvent {
  type: StoreEvent['type'];
  kv: KeyValue;
  prev_kv?: KeyValue;
}

export interface WatchResponse {
  header: ResponseHeader;
  watch_id: number;
  created?: boolean;
  canceled?: boolean;
  compact_revision?: number;
  cancel_reason?: string;
  events?: WireEvent[];
}

/** One gRPC watch stream, as the hub sees it. */
export interface WatchSink {
  /** Queues a response; false when the stream's buffer is full, after which the hub waits for `resume`. */
  send(resp: WatchResponse): boolean;
  blocked: boolean;
  /** Called when the hub cancels a watcher by itself (compaction overtook it). */
  dropped(w: Watcher): void;
}

export interface Watcher {
  readonly id: number;
  readonly sink: WatchSink;
  readonly range: KeyRange;
  readonly noPut: boolean;
  readonly noDelete: boolean;
  readonly prevKv: boolean;
  readonly progressNotify: boolean;
  /** The first revision not yet delivered. */
  nextRev: number;
  /**
   * Synced: up to date, fed by `notify` after each commit. Otherwise it catches up by reading history,
   * which is also where a watcher goes when its stream cannot take more (so a slow client never loses events).
   */
  synced: boolean;
  catchingUp: boolean;
  canceled: boolean;
  /** No events were sent since the last progress tick. */
  quiet: boolean;
}

/** Rows read per catch-up step, and the size at which a catch-up response is cut (at a revision boundary). */
const CATCH_UP_ROWS = 1000;
const RESPONSE_BYTES = 1024 * 1024;

export class WatchHub {
  private readonly watchers = new Set<Watcher>();
  private closed = false;

  constructor(
    private readonly store: MvccStore,
    private readonly header: (rev: number) => ResponseHeader,
  ) {}

  get size(): number {
    return this.watchers.size;
  }

  add(w: Watcher): void {
    if (this.closed) return;
    this.watchers.add(w);
    this.resumeWatcher(w);
  }

  remove(w: Watcher): void {
    w.canceled = true;
    this.watchers.delete(w);
  }

  /** Stops all delivery (the store is closing); pending catch-up steps find nothing to do. */
  close(): void {
    this.closed = true;
    for (const w of this.watchers) w.canceled = true;
    this.watchers.clear();
  }

  /**
   * Live delivery failed part-way (an error reading prev_kv, say): every watcher goes back to catching up from
   * history, which resumes exactly at its next undelivered revision.
   */
  desyncAll(): void {
    for (const w of this.watchers) {
      w.synced = false;
      this.resumeWatcher(w);
    }
  }

  /** The sink drained: watchers that fell behind catch up from history. */
  resume(sink: WatchSink): void {
    for (const w of this.watchers) if (w.sink === sink) this.resumeWatcher(w);
  }

  private resumeWatcher(w: Watcher): void {
    if (w.canceled || w.synced || w.catchingUp) return;
    w.catchingUp = true;
    setImmediate(() => this.catchUp(w));
  }

  /** After each commit: the batch's events, in revision order, to every synced watcher they concern. */
  notify(events: StoreEvent[]): void {
    let i = 0;
    while (i < events.length) {
      const rev = events[i].kv.mod_revision;
      let j = i + 1;
      while (j < events.length && events[j].kv.mod_revision === rev) j++;
      const group = events.slice(i, j);
      for (const w of this.watchers) {
        if (!w.synced || w.nextRev > rev) continue;
        const evs = this.select(w, group);
        if (evs.length > 0) this.deliver(w, { header: this.header(rev), watch_id: w.id, events: evs });
        w.nextRev = rev + 1;
      }
      i = j;
    }
  }

  /** A progress tick: watchers that asked for progress and heard nothing since the last tick get the current revision. */
  progressTick(): void {
    for (const w of this.watchers) {
      if (!w.progressNotify) continue;
      if (w.synced && w.quiet) this.deliver(w, { header: this.header(this.store.rev), watch_id: w.id, events: [] });
      w.quiet = true;
    }
  }

  private catchUp(w: Watcher): void {
    w.catchingUp = false;
    if (this.closed || w.canceled || w.synced || w.sink.blocked) return;
    try {
      this.catchUpStep(w);
    } catch (e) {
      // History could not be read: end this watcher rather than leave a gap.
      this.remove(w);
      w.sink.send({ header: this.header(this.store.rev), watch_id: w.id, canceled: true, cancel_reason: `etcdserver: ${(e as Error).message}` });
      w.sink.dropped(w);
    }
  }

  private catchUpStep(w: Watcher): void {
    const store = this.store;
    if (w.nextRev < store.compactRev) {
      // History this watcher needs is gone: tell it where compaction stands and cancel it, as etcd does.
      this.remove(w);
      w.sink.send({ header: this.header(store.rev), watch_id: w.id, compact_revision: store.compactRev, canceled: true, events: [] });
      w.sink.dropped(w);
      return;
    }
    if (w.nextRev > store.rev) {
      w.synced = true;
      return;
    }
    const { events, upTo } = store.eventsFrom(w.nextRev, CATCH_UP_ROWS);
    const selected = this.select(w, events);
    let batch: WireEvent[] = [];
    let bytes = 0;
    for (let i = 0; i < selected.length; i++) {
      const e = selected[i];
      const size = eventBytes(e);
      const newRevision = i > 0 && selected[i - 1].kv.mod_revision !== e.kv.mod_revision;
      if (batch.length > 0 && newRevision && bytes + size > RESPONSE_BYTES) {
        this.deliver(w, { header: this.header(store.rev), watch_id: w.id, events: batch });
        batch = [];
        bytes = 0;
      }
      batch.push(e);
      bytes += size;
    }
    if (batch.length > 0) this.deliver(w, { header: this.header(store.rev), watch_id: w.id, events: batch });
    w.nextRev = upTo + 1;
    if (w.canceled) return;
    if (w.nextRev > store.rev) {
      // Caught up within this synchronous step, so no commit can slip between history and live delivery.
      w.synced = true;
      return;
    }
    if (!w.sink.blocked) {
      w.catchingUp = true;
      setImmediate(() => this.catchUp(w));
    }
  }

  private select(w: Watcher, events: StoreEvent[]): WireEvent[] {
    const out: WireEvent[] = [];
    for (const e of events) {
      if (!inRange(w.range, e.kv.key)) continue;
      if (e.type === 'PUT' ? w.noPut : w.noDelete) continue;
      const wire: WireEvent = { type: e.type, kv: e.kv };
      const isCreate = e.type === 'PUT' && e.kv.create_revision === e.kv.mod_revision;
      if (w.prevKv && !isCreate) {
        const prev = this.store.kvBefore(e.kv.key, e.kv.mod_revision);
        if (prev) wire.prev_kv = prev;
      }
      out.push(wire);
    }
    return out;
  }

  private deliver(w: Watcher, resp: WatchResponse): void {
    if (resp.events && resp.events.length > 0) w.quiet = false;
    if (!w.sink.send(resp) && !w.sink.blocked) {
      // The stream is full: its watchers stop taking live events and catch up from history once it drains.
      w.sink.blocked = true;
      for (const other of this.watchers) if (other.sink === w.sink) other.synced = false;
    }
  }
}

function eventBytes(e: WireEvent): number {
  return 48 + e.kv.key.length + e.kv.value.length + (e.prev_kv ? 48 + e.prev_kv.key.length + e.prev_kv.value.length : 0);
}
