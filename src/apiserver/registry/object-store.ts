// One resource's objects in the state store: JSON values under a key prefix, resourceVersion = the key's mod revision.
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { StoreCompactedError, type Store, type StoreWatch, type WatchEvent } from '../../store/client.js';
import type { Clock } from '../../util/clock.js';
import { TrustplaneError } from '../../util/errors.js';
import { alreadyExistsError, badRequestError, conflictError, expiredError, notFoundError, tooLargeResourceVersionError, type ResourceRef } from '../status.js';
import type { KubeObject } from '../types.js';
import { managedFieldsAfter, type FieldManager } from './managed-fields.js';
import { generateName, timestamp } from './meta.js';
import { WatchCache } from './watch-cache.js';
import { LruMap } from '../../util/lru.js';

export interface ResourceInfo extends ResourceRef {
  apiVersion: string;
  /** Store key prefix, ending in "/". */
  prefix: string;
  /** The one namespace a namespaced resource lives in here (leases: kube-node-lease). */
  namespace?: string;
  /**
   * Top-level struct fields that kube-apiserver always writes, as `{}` when empty (a CSR's `status`, a Node's `spec`
   * and `status`): a client that sets `status.conditions` on what it read needs `status` to be there.
   */
  alwaysPresent?: string[];
  /** Dotted paths the server sets from the request's context (a CSR's spec.username...): no field manager owns them. */
  serverSetFields?: string[];
}

export interface WriteOptions {
  /** Validate and return the result, write nothing (dryRun=All). */
  dryRun?: boolean;
  /** Who writes, for metadata.managedFields; writes without one (controllers) leave the entries as they are. */
  manager?: FieldManager;
}

export interface Preconditions {
  /** Refuse with 409 Conflict unless the object is still at this resourceVersion. */
  resourceVersion?: string;
  /** Refuse with 409 Conflict unless the object still has this uid. */
  uid?: string;
}

export type WatchType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface ObjectEvent<T> {
  type: WatchType;
  object: T;
  /** The store revision of the change. */
  revision: bigint;
}

export interface ObjectWatch {
  cancel(): Promise<void>;
  /** Resolves when the watch ends: null when canceled, else why (a 410 Expired ApiError when the revision was compacted). */
  readonly ended: Promise<TrustplaneError | null>;
}

export interface ListResult<T> {
  items: T[];
  resourceVersion: string;
}

const MAX_RETRIES = 16;
/** Objects remembered as last written or read (see `latest`): enough for one Lease per node of a large cluster. */
const LATEST_MAX = 20_000;

function withoutManagedFields<T extends KubeObject>(obj: T): T {
  const { managedFields: _, ...metadata } = obj.metadata;
  return { ...obj, metadata };
}

export function parseResourceVersion(rv: string | undefined, what = 'resourceVersion'): bigint | undefined {
  if (rv === undefined || rv === '') return undefined;
  if (!/^[0-9]{1,19}$/.test(rv)) throw badRequestError(`${what} "${rv}" is not a valid resource version`);
  return BigInt(rv);
}

export class ObjectStore<T extends KubeObject> {
  private readonly cache: WatchCache<T>;
  /**
   * The stored bytes of each object as this process last wrote or read them, with their mod revision. An update whose
   * resourceVersion precondition names that revision (a node renewing its Lease with what it got back last time) starts
   * from them without reading the store; the compare-and-swap still proves them current, so a stale entry only costs
   * the read it would have cost anyway.
   */
  private readonly latest = new LruMap<string, { value: string; rev: bigint }>(LATEST_MAX);

  constructor(
    readonly store: Store,
    readonly info: ResourceInfo,
    readonly clock: Clock,
  ) {
    this.cache = new WatchCache({ store, prefix: info.prefix, decode: (ev) => this.eventOf(ev), failure: (e) => this.expired(e) });
  }

  key(name: string): string {
    return `${this.info.prefix}${name}`;
  }

  decode(value: Buffer, revision: bigint): T {
    const obj = JSON.parse(value.toString('utf8')) as T;
    obj.metadata.resourceVersion = revision.toString();
    this.fill(obj);
    return obj;
  }

  /** The always-present fields, `{}` where missing (objects stored before they were filled in, or written without them). */
  private fill(obj: T): void {
    for (const f of this.info.alwaysPresent ?? []) {
      const o = obj as Record<string, unknown>;
      if (o[f] === undefined || o[f] === null) o[f] = {};
    }
  }

  /** metadata.managedFields after `o.manager` turned `before` into `next` (in place); nothing without a manager. */
  private manage(before: T | undefined, next: T, o: WriteOptions): void {
    if (!o.manager) return;
    const entries = managedFieldsAfter(before, next, o.manager, timestamp(this.clock.now()), this.info.apiVersion, this.info.serverSetFields);
    if (entries.length) next.metadata.managedFields = entries;
    else delete next.metadata.managedFields;
  }

  private remember(name: string, value: string, rev: bigint): void {
    this.latest.set(name, { value, rev });
  }

  private encode(obj: T): string {
    const { resourceVersion: _, ...metadata } = obj.metadata;
    return JSON.stringify({ ...obj, apiVersion: this.info.apiVersion, kind: this.info.kind, metadata });
  }

  async tryGet(name: string): Promise<T | null> {
    const kv = await this.store.get(this.key(name));
    if (!kv) {
      this.latest.delete(name);
      return null;
    }
    this.remember(name, kv.value.toString('utf8'), kv.modRevision);
    return this.decode(kv.value, kv.modRevision);
  }

  async get(name: string): Promise<T> {
    const obj = await this.tryGet(name);
    if (!obj) throw notFoundError(this.info, name);
    return obj;
  }

  /** Every object, now or as it was at `revision`. */
  async list(revision?: bigint): Promise<ListResult<T>> {
    let r;
    try {
      r = await this.store.getPrefix(this.info.prefix, revision === undefined ? {} : { revision });
    } catch (e) {
      if (revision !== undefined) {
        // A revision the store has not reached: kube-apiserver's "Too large resource version" (504, retry later).
        const now = (await this.store.getPrefix(this.info.prefix, { limit: 1, keysOnly: true })).revision;
        if (revision > now) throw tooLargeResourceVersionError(revision, now);
      }
      throw this.expired(e);
    }
    // At a revision, the list is of that revision (the store's header names its current one), as kube-apiserver's Exact.
    return { items: r.kvs.map((kv) => this.decode(kv.value, kv.modRevision)), resourceVersion: (revision ?? r.revision).toString() };
  }

  /**
   * Writes a new object. A missing name is generated from metadata.generateName; uid and creationTimestamp are set
   * here, resourceVersion is the store's. `prepare` runs on the final object (name known) before the write.
   */
  async create(obj: T, o: WriteOptions = {}, prepare?: (obj: T) => Promise<void> | void): Promise<T> {
    const meta = obj.metadata;
    const generated = !meta.name && !!meta.generateName;
    for (let attempt = 0; ; attempt++) {
      const candidate: T = structuredClone(obj);
      const m = candidate.metadata;
      if (generated) m.name = generateName(meta.generateName!);
      m.uid = randomUUID();
      m.creationTimestamp = timestamp(this.clock.now());
      delete m.resourceVersion;
      delete m.deletionTimestamp;
      if (this.info.namespace) m.namespace = this.info.namespace;
      else delete m.namespace;
      candidate.apiVersion = this.info.apiVersion;
      candidate.kind = this.info.kind;
      this.fill(candidate);
      await prepare?.(candidate);
      if (o.manager) {
        delete m.managedFields;
        this.manage(undefined, candidate, o);
      }
      if (o.dryRun) {
        if (!generated && (await this.store.get(this.key(m.name)))) throw alreadyExistsError(this.info, m.name);
        return candidate;
      }
      const encoded = this.encode(candidate);
      const r = await this.store.updateIfModRevision(this.key(m.name), encoded, 0n);
      if (r.ok) {
        m.resourceVersion = r.modRevision.toString();
        this.remember(m.name, encoded, r.modRevision);
        return candidate;
      }
      if (!generated || attempt >= 8) throw alreadyExistsError(this.info, m.name);
    }
  }

  /**
   * Read, change, compare-and-swap. With a resourceVersion precondition a concurrent write is a 409 Conflict; without
   * one the change is re-applied to the newer object. Identity fields stay as they were; an unchanged object is not
   * written (its resourceVersion stays).
   *
   * `known` is the object as the caller last read it (a controller that read it to decide what to write): the first try
   * starts from it instead of reading it again. What is built on it is provisional until the compare-and-swap proves it
   * current; if it is stale, or judged unchanged or refused, the object is read and judged as without it.
   */
  async update(name: string, mutate: (current: T) => T | Promise<T>, pre: Preconditions = {}, o: WriteOptions = {}, known?: T): Promise<T> {
    const wantRv = parseResourceVersion(pre.resourceVersion);
    if (!known && wantRv !== undefined) {
      const l = this.latest.get(name);
      if (l && l.rev === wantRv) known = this.decode(Buffer.from(l.value, 'utf8'), l.rev);
    }
    const knownRv = known && /^[0-9]{1,19}$/.test(known.metadata.resourceVersion ?? '') ? BigInt(known.metadata.resourceVersion!) : undefined;
    if (known && knownRv !== undefined && known.metadata.name === name && !o.dryRun && (wantRv === undefined || wantRv === knownRv)) {
      let next: T | undefined;
      try {
        next = await this.change(known, knownRv, mutate, wantRv, pre.uid, o);
      } catch {
        next = undefined;
      }
      if (next && !isDeepStrictEqual(next, known)) {
        const encoded = this.encode(next);
        const r = await this.store.updateIfModRevision(this.key(name), encoded, knownRv);
        if (r.ok) {
          next.metadata.resourceVersion = r.modRevision.toString();
          this.remember(name, encoded, r.modRevision);
          return next;
        }
        if (r.modRevision === 0n) throw notFoundError(this.info, name);
      }
    }
    for (let attempt = 0; ; attempt++) {
      const kv = await this.store.get(this.key(name));
      if (!kv) throw notFoundError(this.info, name);
      const current = this.decode(kv.value, kv.modRevision);
      const next = await this.change(current, kv.modRevision, mutate, wantRv, pre.uid, o);
      if (isDeepStrictEqual(next, current) || o.dryRun) return next;
      const encoded = this.encode(next);
      const r = await this.store.updateIfModRevision(this.key(name), encoded, kv.modRevision);
      if (r.ok) {
        next.metadata.resourceVersion = r.modRevision.toString();
        this.remember(name, encoded, r.modRevision);
        return next;
      }
      if (r.modRevision === 0n) throw notFoundError(this.info, name);
      if (wantRv !== undefined || attempt >= MAX_RETRIES) throw conflictError(this.info, name);
    }
  }

  /** `current` (at `modRevision`) after the preconditions and `mutate`, identity fields kept. */
  private async change(current: T, modRevision: bigint, mutate: (current: T) => T | Promise<T>, wantRv: bigint | undefined, uid: string | undefined, o: WriteOptions): Promise<T> {
    this.checkPreconditions(current, modRevision, wantRv, uid);
    const next = await mutate(structuredClone(current));
    const m = next.metadata;
    m.name = current.metadata.name;
    m.uid = current.metadata.uid;
    m.creationTimestamp = current.metadata.creationTimestamp;
    if (current.metadata.namespace) m.namespace = current.metadata.namespace;
    else delete m.namespace;
    m.resourceVersion = current.metadata.resourceVersion;
    next.apiVersion = this.info.apiVersion;
    next.kind = this.info.kind;
    this.fill(next);
    // The entries change only with the object: a write that changes nothing leaves managedFields (and the store) alone.
    if (o.manager && !isDeepStrictEqual(withoutManagedFields(next), withoutManagedFields(current))) this.manage(current, next, o);
    return next;
  }

  /** Deletes and returns the object as it was. */
  async delete(name: string, pre: Preconditions = {}, o: WriteOptions = {}): Promise<T> {
    const wantRv = parseResourceVersion(pre.resourceVersion);
    for (let attempt = 0; ; attempt++) {
      const kv = await this.store.get(this.key(name));
      if (!kv) throw notFoundError(this.info, name);
      const current = this.decode(kv.value, kv.modRevision);
      this.checkPreconditions(current, kv.modRevision, wantRv, pre.uid);
      if (o.dryRun) return current;
      const r = await this.store.deleteIfModRevision(this.key(name), kv.modRevision);
      if (r.ok) {
        this.latest.delete(name);
        return current;
      }
      if (r.modRevision === 0n) throw notFoundError(this.info, name);
      if (wantRv !== undefined || attempt >= MAX_RETRIES) throw conflictError(this.info, name);
    }
  }

  private checkPreconditions(current: T, modRevision: bigint, wantRv: bigint | undefined, uid: string | undefined): void {
    const name = current.metadata.name;
    if (wantRv !== undefined && wantRv !== modRevision) throw conflictError(this.info, name);
    if (uid !== undefined && uid !== '' && uid !== current.metadata.uid) {
      throw conflictError(this.info, name, `Precondition failed: UID in precondition: ${uid}, UID in object meta: ${current.metadata.uid}`);
    }
  }

  /**
   * Every change after revision `after` (or after now), in order. DELETED events carry the object's last state. Event
   * objects may be shared with other watchers of this registry: read them, do not change them.
   */
  async watch(after: bigint | undefined, onEvent: (ev: ObjectEvent<T>) => void): Promise<ObjectWatch> {
    // From a revision the watch cache holds: no store watch of its own. "From now" and older revisions go to the store.
    if (after !== undefined) {
      const cached = await this.cache.watch(after, onEvent);
      if (cached) return cached;
    }
    const handler = (ev: WatchEvent) => {
      const e = this.eventOf(ev);
      if (e) onEvent(e);
    };
    let w: StoreWatch;
    try {
      w = await this.store.watchPrefix(this.info.prefix, { startRevision: after === undefined ? undefined : after + 1n, prevKv: true }, handler);
    } catch (e) {
      throw this.expired(e);
    }
    return { cancel: () => w.cancel(), ended: w.ended.then((e) => (e ? this.expired(e) : null)) };
  }

  private eventOf(ev: WatchEvent): ObjectEvent<T> | null {
    if (ev.type === 'delete') return ev.prevKv ? { type: 'DELETED', object: this.decode(ev.prevKv.value, ev.revision), revision: ev.revision } : null;
    const type: WatchType = ev.kv.createRevision === ev.kv.modRevision ? 'ADDED' : 'MODIFIED';
    return { type, object: this.decode(ev.value, ev.revision), revision: ev.revision };
  }

  private expired(e: unknown): TrustplaneError {
    if (e instanceof StoreCompactedError) {
      const c = e as StoreCompactedError;
      return expiredError(`too old resource version: ${c.requestedRevision ?? '?'}${c.compactRevision ? ` (${c.compactRevision})` : ''}`);
    }
    return e instanceof TrustplaneError ? e : new TrustplaneError('Internal', String((e as Error)?.message ?? e));
  }
}
