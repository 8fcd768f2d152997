// Watch responses: one JSON event per line on a chunked response, from a store watch, until the client leaves or time runs out.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ObjectEvent, ObjectWatch, WatchType } from '../registry/object-store.js';
import { toStatus } from '../status.js';
import type { KubeObject } from '../types.js';

/** A slow reader that falls this far behind is cut off; it lists again, as every watch client must be ready to. */
const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;

export interface WatchStreamOptions {
  /** Starts the store watch; events after `after`. */
  start(after: bigint | undefined, onEvent: (ev: ObjectEvent<KubeObject>) => void): Promise<ObjectWatch>;
  /** Objects to send as ADDED first (a watch without resourceVersion), and the revision they were read at. */
  initial?: () => Promise<{ items: KubeObject[]; revision: bigint }>;
  after?: bigint;
  /** When set, a BOOKMARK with this object follows the initial objects (the watch-list protocol's end marker). */
  initialEventsEnd?: (revision: bigint) => unknown;
  /** Only objects passing this are sent. */
  filter(obj: KubeObject): boolean;
  /** The event's object as sent (the object itself, or a one-row Table). */
  render(obj: KubeObject, first: boolean): unknown;
  timeoutSeconds?: number;
  /** Called with every watch this server has open, so that close() can end them. */
  track(end: () => void): () => void;
}

export async function serveWatch(req: IncomingMessage, res: ServerResponse, o: WatchStreamOptions): Promise<void> {
  let ready = false;
  let closed = false;
  let first = true;
  const queued: ObjectEvent<KubeObject>[] = [];
  const write = (type: WatchType | 'BOOKMARK' | 'ERROR', object: unknown) => {
    if (closed) return;
    res.write(`${JSON.stringify({ type, object })}\n`);
    if (res.writableLength > MAX_BUFFERED_BYTES) finish();
  };
  const deliver = (ev: ObjectEvent<KubeObject>) => {
    if (!o.filter(ev.object)) return;
    write(ev.type, o.render(ev.object, first));
    first = false;
  };

  let initial: { items: KubeObject[]; revision: bigint } | undefined;
  let after = o.after;
  if (o.initial) {
    initial = await o.initial();
    after = initial.revision;
  }
  const watch = await o.start(after, (ev) => (ready ? deliver(ev) : queued.push(ev)));

  let timer: NodeJS.Timeout | undefined;
  let untrack = () => {};
  function finish() {
    if (closed) return;
    closed = true;
    clearTimeout(timer);
    untrack();
    void watch.cancel();
    res.end();
  }
  untrack = o.track(finish);
  req.on('close', finish);
  res.on('close', finish);
  if (o.timeoutSeconds && o.timeoutSeconds > 0) timer = setTimeout(finish, o.timeoutSeconds * 1000);
  void watch.ended.then((e) => {
    if (e && !closed) write('ERROR', toStatus(e));
    finish();
  });

  // No Transfer-Encoding header: HTTP/1.1 chunks a reply without a length by itself, and HTTP/2 refuses the header.
  res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
  res.flushHeaders();
  for (const it of initial?.items ?? []) deliver({ type: 'ADDED', object: it, revision: 0n });
  if (o.initialEventsEnd && after !== undefined) write('BOOKMARK', o.initialEventsEnd(after));
  for (const ev of queued.splice(0)) deliver(ev);
  ready = true;
}
