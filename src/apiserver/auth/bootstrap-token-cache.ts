// The stored bootstrap token records, kept current by a store watch, so that a bearer token costs no store read per
// request (kube-apiserver's bootstrap token authenticator reads a secret lister the same way).
import type { KeyValue, Store, StoreWatch } from '../../store/client.js';
import { BOOTSTRAP_TOKEN_PREFIX } from './bootstrap-tokens.js';

const RELIST_MS = 1000;

/**
 * Before the first list, and while the watch is down, every lookup reads the store. An id the cache does not hold is
 * read from the store too, so a token created a moment ago works at once; a deleted one stops working as soon as the
 * watch reports the delete.
 */
export class BootstrapTokenCache {
  private readonly records = new Map<string, KeyValue>();
  private synced = false;
  private started = false;
  private stopped = false;
  private watch?: StoreWatch;
  private timer?: NodeJS.Timeout;

  constructor(private readonly store: Store) {}

  /** The record stored for token id `id` (its key's current value), or null. */
  async lookup(id: string): Promise<KeyValue | null> {
    if (!this.started) this.start();
    if (this.synced) {
      const kv = this.records.get(id);
      if (kv) return kv;
    }
    return this.store.get(`${BOOTSTRAP_TOKEN_PREFIX}${id}`);
  }

  stop(): void {
    this.stopped = true;
    this.synced = false;
    clearTimeout(this.timer);
    void this.watch?.cancel();
  }

  private start(): void {
    this.started = true;
    void this.listAndWatch();
  }

  private async listAndWatch(): Promise<void> {
    if (this.stopped) return;
    try {
      const listed = await this.store.getPrefix(BOOTSTRAP_TOKEN_PREFIX);
      if (this.stopped) return;
      this.records.clear();
      for (const kv of listed.kvs) this.records.set(kv.key.slice(BOOTSTRAP_TOKEN_PREFIX.length), kv);
      const w = await this.store.watchPrefix(BOOTSTRAP_TOKEN_PREFIX, { startRevision: listed.revision + 1n }, (ev) => {
        const id = ev.key.slice(BOOTSTRAP_TOKEN_PREFIX.length);
        if (ev.type === 'delete') this.records.delete(id);
        else this.records.set(id, ev.kv);
      });
      this.watch = w;
      if (this.stopped) {
        void w.cancel();
        return;
      }
      this.synced = true;
      void w.ended.then((e) => {
        this.synced = false;
        // Canceled (stop, or the store client closed): done; anything else (history compacted, say): list again.
        if (e !== null) this.relistLater();
      });
    } catch {
      this.relistLater();
    }
  }

  private relistLater(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.listAndWatch(), RELIST_MS);
    this.timer.unref();
  }
}
