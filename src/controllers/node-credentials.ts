// NodeCredential records: which kubelet client certificates each node holds, written by the CSR signer, read by the approver.
//
// One key per node, /registry/trustplane/nodecredentials/<node>, JSON. The newest certificate is at the top level; older
// ones that had not expired when the record was last written are kept in `earlier` (renewals overlap), so that a later
// revocation can name any of them. A credential is *live* while it has not expired and has not been revoked.
import { isNodeName } from '../pki/node-identity.js';
import type { Store } from '../store/client.js';
import { TrustplaneError, invalid } from '../util/errors.js';
import { LruMap } from '../util/lru.js';

export const NODE_CREDENTIAL_PREFIX = '/registry/trustplane/nodecredentials/';

/** One kubelet client certificate issued to a node. */
export interface NodeCredentialEntry {
  /** Certificate serial, lower-case hex. */
  serial: string;
  /** RFC 3339. */
  notAfter: string;
  /** The cluster root CA generation that signed it. */
  generation: number;
  /** RFC 3339: when the signer wrote it into its CSR. */
  issuedAt: string;
  /** The CSR it was issued for. */
  csr: string;
  /** Set by revocation: from then on the certificate is no longer live. */
  revokedAt?: string;
  /** The node pool the node joined (its bootstrap token's), carried on to the entries of its renewals. */
  pool?: string;
  /** The address the CSR came from, as the API server saw it: where the control plane has seen the node. */
  address?: string;
}

export interface NodeCredential extends NodeCredentialEntry {
  node: string;
  /** Older certificates of this node, newest first, that had not expired when the record was written. */
  earlier?: NodeCredentialEntry[];
}

export interface StoredNodeCredential {
  record: NodeCredential;
  /** The store's mod revision of the record, for compare-and-swap writes. */
  modRevision: bigint;
}

/** Older entries kept at most: renewal at 70-90 % of the lifetime leaves two or three live at once. */
export const MAX_EARLIER = 16;

export { isNodeName } from '../pki/node-identity.js';

function keyOf(node: string): string {
  if (!isNodeName(node)) throw invalid(`node name "${node}" is not a DNS subdomain`);
  return `${NODE_CREDENTIAL_PREFIX}${node}`;
}

function decode(value: Buffer): NodeCredential | null {
  try {
    const r = JSON.parse(value.toString('utf8')) as NodeCredential;
    return typeof r.node === 'string' && typeof r.serial === 'string' && typeof r.notAfter === 'string' ? r : null;
  } catch {
    return null;
  }
}

export async function getNodeCredential(store: Store, node: string): Promise<StoredNodeCredential | null> {
  const kv = await store.get(keyOf(node));
  const record = kv && decode(kv.value);
  return record ? { record, modRevision: kv.modRevision } : null;
}

export async function listNodeCredentials(store: Store): Promise<StoredNodeCredential[]> {
  const r = await store.getPrefix(NODE_CREDENTIAL_PREFIX);
  const out: StoredNodeCredential[] = [];
  for (const kv of r.kvs) {
    const record = decode(kv.value);
    if (record) out.push({ record, modRevision: kv.modRevision });
  }
  return out;
}

/**
 * Writes a record. With `expectModRevision` the write happens only if the record is still at that revision (0n: only if
 * there is none) and is refused with Conflict otherwise. Returns the new mod revision.
 */
export async function putNodeCredential(store: Store, record: NodeCredential, expectModRevision?: bigint): Promise<bigint> {
  const key = keyOf(record.node);
  const value = JSON.stringify(record);
  if (expectModRevision === undefined) return (await store.put(key, value)).revision;
  const r = await store.updateIfModRevision(key, value, expectModRevision);
  if (!r.ok) throw new TrustplaneError('Conflict', `the credential record of node "${record.node}" changed concurrently`, 'read it again and retry');
  return r.modRevision;
}

/** Every certificate in a record, newest first. */
export function credentialEntries(record: NodeCredential | null | undefined): NodeCredentialEntry[] {
  if (!record) return [];
  const { node: _n, earlier, ...latest } = record;
  return [latest, ...(earlier ?? [])];
}

export function isLive(entry: NodeCredentialEntry, now: Date): boolean {
  return !entry.revokedAt && Date.parse(entry.notAfter) > now.getTime();
}

/** The node's live certificate that lasts longest, if it holds one. */
export function liveCredential(record: NodeCredential | null | undefined, now: Date): NodeCredentialEntry | undefined {
  return credentialEntries(record)
    .filter((e) => isLive(e, now))
    .sort((a, b) => Date.parse(b.notAfter) - Date.parse(a.notAfter))[0];
}

const newestFirst = (a: NodeCredentialEntry, b: NodeCredentialEntry) =>
  Date.parse(b.issuedAt) - Date.parse(a.issuedAt) || Date.parse(b.notAfter) - Date.parse(a.notAfter) || (a.serial < b.serial ? 1 : -1);

/**
 * The record after `entry` was issued to `node`: entries expired at `now` are dropped, one already known (same serial)
 * keeps what the record says of it (a revocation stays). Null when there is nothing worth keeping.
 */
export function mergeCredential(record: NodeCredential | null, node: string, entry: NodeCredentialEntry, now: Date): NodeCredential | null {
  const known = credentialEntries(record);
  // A renewal does not say which pool the node joined: the pool of the join goes on with every later entry.
  const pool = entry.pool ?? known.find((e) => e.pool)?.pool;
  const added = pool && !entry.pool ? { ...entry, pool } : entry;
  const all = known.some((e) => e.serial === entry.serial) ? known : [...known, added];
  const kept = all.filter((e) => Date.parse(e.notAfter) > now.getTime()).sort(newestFirst);
  if (kept.length === 0) return null;
  const [latest, ...earlier] = kept;
  return { node, ...latest, ...(earlier.length ? { earlier: earlier.slice(0, MAX_EARLIER) } : {}) };
}

/**
 * What one writer last stored of each node's record, so that its next write is a single compare-and-swap from there
 * instead of a read and a write. A record changed by anyone else makes that swap conflict, and it is read again: the
 * cache saves reads, never decides what is stored.
 */
export class NodeCredentialCache extends LruMap<string, StoredNodeCredential> {
  constructor(max = 50_000) {
    super(max);
  }
}

/**
 * Adds an issued certificate to the node's record (compare-and-swap, retried on concurrent writes). A serial the record
 * already holds changes nothing, so replaying an issuance is harmless. Returns the record as stored. With a cache, the
 * first attempt starts from the record this writer last stored, or (for a node it has not written) from no record: a
 * node's first certificate then costs one store call, not two.
 */
export async function recordNodeCredential(store: Store, node: string, entry: NodeCredentialEntry, now: Date, cache?: NodeCredentialCache): Promise<NodeCredential | null> {
  let guess: StoredNodeCredential | null | undefined = cache ? (cache.get(node) ?? null) : undefined;
  for (let attempt = 0; ; attempt++) {
    const cur = guess !== undefined ? guess : await getNodeCredential(store, node);
    guess = undefined;
    if (cur && credentialEntries(cur.record).some((e) => e.serial === entry.serial)) return cur.record;
    const next = mergeCredential(cur?.record ?? null, node, entry, now);
    if (!next) return cur?.record ?? null;
    try {
      const modRevision = await putNodeCredential(store, next, cur?.modRevision ?? 0n);
      cache?.set(node, { record: next, modRevision });
      return next;
    } catch (e) {
      cache?.delete(node);
      if (!(e instanceof TrustplaneError && e.reason === 'Conflict') || attempt >= 16) throw e;
    }
  }
}
