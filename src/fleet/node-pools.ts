// Node pools of one cluster, kept in the cluster's own state store: a name nodes join under and bootstrap tokens are made
// for, and what its nodes' serving certificates may name beyond their own name and the address they connect from.
import { createBootstrapToken, deleteBootstrapToken, listBootstrapTokens } from '../apiserver/index.js';
import { NODE_POOL_PREFIX, checkPoolServing, type NodePoolServing } from '../controllers/index.js';
import type { Store } from '../store/client.js';
import type { Clock } from '../util/clock.js';
import { TrustplaneError, invalid } from '../util/errors.js';
import type { NodePool } from './api.js';

export { NODE_POOL_PREFIX, type NodePoolServing };
const POOL_NAME = /^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$/;

export function checkPoolName(name: string): string {
  if (!POOL_NAME.test(name)) throw invalid(`node pool name "${name}" is not valid`, 'use 1-40 lower-case letters, digits and dashes, starting and ending with a letter or digit');
  return name;
}

export async function listNodePools(store: Store): Promise<NodePool[]> {
  const r = await store.getPrefix(NODE_POOL_PREFIX);
  return r.kvs.map((kv) => JSON.parse(kv.value.toString('utf8')) as NodePool).sort((a, b) => a.name.localeCompare(b.name));
}

export async function getNodePool(store: Store, cluster: string, name: string): Promise<NodePool> {
  const kv = await store.get(NODE_POOL_PREFIX + checkPoolName(name));
  if (!kv) throw new TrustplaneError('NotFound', `cluster "${cluster}" has no node pool "${name}"`, `list them with \`trustplane node-pools list --cluster ${cluster}\``);
  return JSON.parse(kv.value.toString('utf8')) as NodePool;
}

/**
 * Creates the pool; with `ifAbsent`, an existing pool is returned instead of refused (cluster creation resuming). The
 * serving options default to none: a node is certified only for its own name and the address it was seen at.
 */
export async function createNodePool(store: Store, cluster: string, name: string, clock: Clock, ifAbsent = false, serving: NodePoolServing = {}): Promise<NodePool> {
  const pool: NodePool = { name: checkPoolName(name), createdAt: clock.now().toISOString(), ...checkPoolServing(serving) };
  if (await store.createIfAbsent(NODE_POOL_PREFIX + name, JSON.stringify(pool))) return pool;
  if (ifAbsent) return getNodePool(store, cluster, name);
  throw new TrustplaneError('AlreadyExists', `cluster "${cluster}" already has a node pool "${name}"`);
}

/** Replaces the pool's serving options (an option left out is kept; an empty list clears it), compare-and-swap. */
export async function updateNodePool(store: Store, cluster: string, name: string, serving: NodePoolServing): Promise<NodePool> {
  for (let attempt = 0; ; attempt++) {
    const kv = await store.get(NODE_POOL_PREFIX + checkPoolName(name));
    if (!kv) throw new TrustplaneError('NotFound', `cluster "${cluster}" has no node pool "${name}"`, `list them with \`trustplane node-pools list --cluster ${cluster}\``);
    const cur = JSON.parse(kv.value.toString('utf8')) as NodePool;
    const merged = checkPoolServing({ allowedCidrs: serving.allowedCidrs ?? cur.allowedCidrs, dnsSuffixes: serving.dnsSuffixes ?? cur.dnsSuffixes });
    const { allowedCidrs: _a, dnsSuffixes: _d, ...rest } = cur;
    const next: NodePool = { ...rest, ...merged };
    if ((await store.updateIfModRevision(NODE_POOL_PREFIX + name, JSON.stringify(next), kv.modRevision)).ok) return next;
    if (attempt >= 8) throw new TrustplaneError('Conflict', `node pool "${name}" kept changing while it was updated`, 'try again');
  }
}

/** Deletes the pool and every bootstrap token made for it; nodes that joined keep their credentials. */
export async function deleteNodePool(store: Store, cluster: string, name: string): Promise<{ tokensDeleted: number }> {
  await getNodePool(store, cluster, name);
  let tokensDeleted = 0;
  for (const t of await listBootstrapTokens(store)) if (t.pool === name && (await deleteBootstrapToken(store, t.id))) tokensDeleted++;
  await store.delete(NODE_POOL_PREFIX + name);
  return { tokensDeleted };
}

export async function createPoolToken(store: Store, cluster: string, pool: string, o: { ttlSeconds: number; nodeName?: string }, clock: Clock) {
  await getNodePool(store, cluster, pool);
  return createBootstrapToken(store, { pool, ttlSeconds: o.ttlSeconds, nodeName: o.nodeName }, clock);
}
