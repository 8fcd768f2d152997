// etcdserverpb.Watch: one session per stream, many watchers per session, created and canceled as etcd's watch server does.
import type * as grpc from '@grpc/grpc-js';
import type { StoreCore } from './core.js';
import { WatchErrors } from './errors.js';
import { keyRange } from './key-range.js';
import type { WatchCreateRequest, WatchRequest } from './messages.js';
import type { WatchResponse, WatchSink, Watcher } from './watch-hub.js';
import { encodeWatchResponse, type Encoded } from './wire.js';

/** etcd's clientv3.InvalidWatchID: the ID of responses that belong to no watcher. */
const INVALID_WATCH_ID = -1;
/** Responses queued on one stream beyond which its watchers stop taking live events and catch up later. */
const STREAM_BUFFER_RESPONSES = 256;

class WatchSession implements WatchSink {
  blocked = false;
  private closed = false;
  private readonly watchers = new Map<number, Watcher>();
  /** Auto-assigned IDs start at 0, skipping IDs the client chose (etcd's watchStream.nextID). */
  private nextId = 0;

  constructor(
    private readonly core: StoreCore,
    private readonly call: grpc.ServerDuplexStream<WatchRequest, WatchResponse | Encoded>,
  ) {
    call.on('data', (req: WatchRequest) => this.onRequest(req));
    call.on('end', () => {
      this.close();
      call.end();
    });
    call.on('error', () => this.close());
    call.on('cancelled', () => this.close());
    call.on('drain', () => {
      if (this.closed) return;
      this.blocked = false;
      core.hub.resume(this);
    });
  }

  send(resp: WatchResponse): boolean {
    if (this.closed) return true;
    this.call.write(encodeWatchResponse(resp));
    return this.call.writableLength < STREAM_BUFFER_RESPONSES;
  }

  dropped(w: Watcher): void {
    if (this.watchers.get(w.id) === w) this.watchers.delete(w.id);
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.watchers.values()) this.core.hub.remove(w);
    this.watchers.clear();
  }

  private onRequest(req: WatchRequest): void {
    if (this.closed) return;
    switch (req.request_union) {
      case 'create_request':
        if (req.create_request) this.create(req.create_request);
        return;
      case 'cancel_request':
        if (req.cancel_request) this.cancel(Number(req.cancel_request.watch_id));
        return;
      case 'progress_request':
        this.send({ header: this.core.header(), watch_id: INVALID_WATCH_ID });
        return;
      default:
        // etcd ignores requests it does not understand rather than ending the stream.
        return;
    }
  }

  private create(c: WatchCreateRequest): void {
    const store = this.core.store;
    const rev = store.rev;
    // An empty key means the smallest key, "\0".
    const key = c.key.length > 0 ? c.key : Buffer.from([0]);
    const range = keyRange(key, c.range_end);
    const refuse = (reason: string) =>
      this.send({ header: this.core.header(rev), watch_id: INVALID_WATCH_ID, created: true, canceled: true, cancel_reason: reason });
    if (range.kind === 'empty') return void refuse(WatchErrors.emptyRange);

    let id = Number(c.watch_id);
    if (id === 0) {
      // 0 is clientv3.AutoWatchID: the server picks.
      while (this.watchers.has(this.nextId)) this.nextId++;
      id = this.nextId++;
    } else if (this.watchers.has(id)) return void refuse(WatchErrors.duplicateId);

    const start = Number(c.start_revision);
    const w: Watcher = {
      id,
      sink: this,
      range,
      noPut: c.filters.includes('NOPUT'),
      noDelete: c.filters.includes('NODELETE'),
      prevKv: c.prev_kv,
      progressNotify: c.progress_notify,
      nextRev: start === 0 ? rev + 1 : start,
      synced: false,
      catchingUp: false,
      canceled: false,
      quiet: true,
    };
    this.watchers.set(id, w);
    this.send({ header: this.core.header(rev), watch_id: id, created: true });
    this.core.hub.add(w);
  }

  private cancel(id: number): void {
    const w = this.watchers.get(id);
    // Canceling an unknown watcher is answered with nothing, as in etcd.
    if (!w) return;
    this.watchers.delete(id);
    this.core.hub.remove(w);
    this.send({ header: this.core.header(), watch_id: id, canceled: true });
  }
}

export function watchService(core: StoreCore): grpc.UntypedServiceImplementation {
  return {
    Watch: (call: grpc.ServerDuplexStream<WatchRequest, WatchResponse | Encoded>) => {
      new WatchSession(core, call);
    },
  };
}
