// A Map bounded to `max` entries that lets the least recently used go first: for caches that save work and never
// decide an outcome (parsed CSRs, imported keys, the last stored bytes of an object).

export class LruMap<K, V> {
  private readonly m = new Map<K, V>();

  constructor(private readonly max: number) {}

  /** The value, now the most recently used. */
  get(key: K): V | undefined {
    const v = this.m.get(key);
    if (v !== undefined) {
      this.m.delete(key);
      this.m.set(key, v);
    }
    return v;
  }

  set(key: K, value: V): void {
    this.m.delete(key);
    this.m.set(key, value);
    // A Map iterates in insertion order: the first key is the least recently used.
    if (this.m.size > this.max) this.m.delete(this.m.keys().next().value as K);
  }

  delete(key: K): void {
    this.m.delete(key);
  }

  get size(): number {
    return this.m.size;
  }

  /** Every value, least recently used first; reading them does not reorder them. */
  values(): IterableIterator<V> {
    return this.m.values();
  }
}
