// List, then watch from the list's revision; after a watch ends with an error (history compacted, store gone), list again.
import type { ListResult, ObjectEvent, ObjectWatch } from '../../apiserver/index.js';
import type { Logger } from '../../util/log.js';
import { backoffMs, Stopper } from './stopper.js';

export interface ListWatchSource<T> {
  list(): Promise<ListResult<T>>;
  watch(after: bigint | undefined, onEvent: (ev: ObjectEvent<T>) => void): Promise<ObjectWatch>;
}

export interface InformerHandlers<T> {
  /** Every object after a (re)list: what the loop knew before is replaced by this. */
  onList(items: T[]): void;
  /** Each change after the list, in store order. */
  onEvent(ev: ObjectEvent<T>): void;
}

export interface Informer {
  /** Resolves after the first successful list has been handed over. */
  readonly synced: Promise<void>;
  stop(): Promise<void>;
}

export function runInformer<T>(
  name: string,
  source: ListWatchSource<T>,
  handlers: InformerHandlers<T>,
  o: { log: Logger; retryBaseMs: number; retryMaxMs: number },
): Informer {
  const stopper = new Stopper();
  let current: ObjectWatch | undefined;
  let markSynced!: () => void;
  const synced = new Promise<void>((r) => (markSynced = r));
  // A handler that throws would end the store watch; the loops' handlers only enqueue, but be sure.
  const guard = <A>(what: string, fn: (a: A) => void) => (a: A) => {
    try {
      fn(a);
    } catch (e) {
      o.log.error({ err: (e as Error).message }, `${name}: ${what} handler failed`);
    }
  };
  const onList = guard('list', handlers.onList);
  const onEvent = guard('event', handlers.onEvent);

  const loop = (async () => {
    let failures = 0;
    while (!stopper.isStopped) {
      try {
        const listed = await source.list();
        if (stopper.isStopped) break;
        onList(listed.items);
        markSynced();
        const w = await source.watch(BigInt(listed.resourceVersion), onEvent);
        current = w;
        if (stopper.isStopped) {
          await w.cancel();
          break;
        }
        failures = 0;
        const why = await w.ended;
        current = undefined;
        if (why === null) break;
        o.log.info({ err: why.message }, `${name}: watch ended; listing again`);
      } catch (e) {
        if (stopper.isStopped) break;
        failures++;
        const wait = backoffMs(failures, o.retryBaseMs, o.retryMaxMs);
        o.log.warn({ err: (e as Error).message, retryInMs: wait }, `${name}: list/watch failed`);
        await stopper.sleep(wait);
      }
    }
  })();

  return {
    synced,
    async stop() {
      stopper.stop();
      await current?.cancel().catch(() => undefined);
      await loop;
    },
  };
}
