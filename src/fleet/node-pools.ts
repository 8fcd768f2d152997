// Node pools of one cluster, kept in the cluster's own state store: a name nodes join under and bootstrap tokens are made
// for, and what its nodes' serving certificates may name beyond their own name and the address they connect from.
import { createBootstrapToken, deleteBootstrapToken, listBootstrapTokens } from '../apiserver/index.js';
import { NODE_POOL_PREFIX, checkPoolServing, type NodePoolServing } from '../controllers/index.js';
import type { Store } from '../store/client.js';
import type { Clock } from '../util/clock.js';
import { TrustplaneError, invalid } from '../util/errors.js';
import { checkPcrList, deleteEnrollment, ekFingerprint, getEnrollment, listEnrollments, putEnrollment, type TpmEnrollment } from '../tpm/enrollment.js';
import type { Enrollment, EnrollRequest, NodePool } from './api.js';
import { nodeNameProblem } from '../pki/node-identity.js';
import { checkEkCaBundle } from '../tpm/ek-certificate.js';

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
export async function createNodePool(
  store: Store,
  cluster: string,
  name: string,
  clock: Clock,
  ifAbsent = false,
  serving: NodePoolServing = {},
  shielded?: { pcrs: number[]; ekCaBundle?: string },
): Promise<NodePool> {
  const policy = shielded ? { pcrs: checkPcrList(shielded.pcrs), ...(shielded.ekCaBundle ? { ekCaBundle: checkEkCaBundle(shielded.ekCaBundle) } : {}) } : undefined;
  const pool: NodePool = { name: checkPoolName(name), createdAt: clock.now().toISOString(), ...checkPoolServing(serving), ...(policy ? { shielded: policy } : {}) };
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

/** Deletes the pool, every bootstrap token made for it and every TPM enrolled in it; nodes that joined keep their credentials. */
export async function deleteNodePool(store: Store, cluster: string, name: string): Promise<{ tokensDeleted: number }> {
  await getNodePool(store, cluster, name);
  let tokensDeleted = 0;
  for (const t of await listBootstrapTokens(store)) if (t.pool === name && (await deleteBootstrapToken(store, t.id))) tokensDeleted++;
  for (const e of await listEnrollments(store)) if (e.pool === name) await deleteEnrollment(store, e.nodeName);
  await store.delete(NODE_POOL_PREFIX + name);
  return { tokensDeleted };
}

export async function createPoolToken(store: Store, cluster: string, pool: string, o: { ttlSeconds: number; nodeName?: string }, clock: Clock) {
  const p = await getNodePool(store, cluster, pool);
  if (p.shielded) {
    throw new TrustplaneError(
      'Invalid',
      `node pool "${pool}" of cluster "${cluster}" is shielded: its nodes join by TPM attestation, never with a bootstrap token`,
      `enroll the node's TPM with \`trustplane node-pools enroll ${pool} --cluster ${cluster} --ek-pub FILE --node-name NAME\`, then join with \`trustplane node join --shielded --tcti TCTI\``,
    );
  }
  return createBootstrapToken(store, { pool, ttlSeconds: o.ttlSeconds, nodeName: o.nodeName }, clock);
}

function enrollmentView(cluster: string, pool: NodePool, e: TpmEnrollment): Enrollment {
  return {
    cluster,
    pool: e.pool,
    nodeName: e.nodeName,
    ekFingerprint: e.ekFingerprint,
    enrolledAt: e.enrolledAt,
    pcrs: pool.shielded?.pcrs ?? [],
    pcrValuesFrom: e.pcrValuesFrom ?? 'pending-first-attestation',
    enrolledBy: e.enrolledBy ?? 'operator',
  };
}

/** Enrolls a node's TPM (its EK) in a shielded pool: that TPM, and only it, may then attest as the node. */
export async function enrollNode(store: Store, cluster: string, poolName: string, req: EnrollRequest, clock: Clock): Promise<Enrollment> {
  const pool = await getNodePool(store, cluster, poolName);
  if (!pool.shielded) {
    throw invalid(`node pool "${poolName}" is not shielded: only shielded pools enroll TPMs`, `create one with \`trustplane node-pools create POOL --cluster ${cluster} --shielded\``);
  }
  const problem = nodeNameProblem(req.nodeName);
  if (problem) throw invalid(problem, 'use lower-case letters, digits, "-" and "."');
  const fingerprint = ekFingerprint(req.ekPublic);
  let pcrValues: Record<string, string> | undefined;
  if (req.pcrValues) {
    pcrValues = {};
    for (const i of pool.shielded.pcrs) {
      const v = req.pcrValues[String(i)];
      if (typeof v !== 'string' || !/^(0x)?[0-9a-fA-F]{64}$/.test(v)) throw invalid(`the PCR values lack a SHA-256 value for PCR ${i} of the pool's policy (${pool.shielded.pcrs.join(',')})`);
      pcrValues[String(i)] = v.replace(/^0x/, '').toLowerCase();
    }
  }
  const e: TpmEnrollment = {
    nodeName: req.nodeName,
    pool: poolName,
    ekPublic: req.ekPublic,
    ekFingerprint: fingerprint,
    enrolledAt: clock.now().toISOString(),
    enrolledBy: 'operator',
    ...(pcrValues ? { pcrValues, pcrValuesFrom: 'enrollment' as const } : {}),
  };
  const existing = await getEnrollment(store, req.nodeName);
  if (existing && existing.pool !== poolName) throw new TrustplaneError('AlreadyExists', `node "${req.nodeName}" is enrolled in node pool "${existing.pool}"`, 'unenroll it there first');
  await putEnrollment(store, e, !req.replace);
  return enrollmentView(cluster, pool, e);
}

export async function listPoolEnrollments(store: Store, cluster: string, poolName: string): Promise<Enrollment[]> {
  const pool = await getNodePool(store, cluster, poolName);
  return (await listEnrollments(store)).filter((e) => e.pool === poolName).map((e) => enrollmentView(cluster, pool, e));
}

export async function unenrollNode(store: Store, cluster: string, poolName: string, nodeName: string): Promise<{ deleted: boolean }> {
  await getNodePool(store, cluster, poolName);
  const e = await getEnrollment(store, nodeName);
  if (!e || e.pool !== poolName) throw new TrustplaneError('NotFound', `node "${nodeName}" has no TPM enrolled in node pool "${poolName}"`);
  return { deleted: await deleteEnrollment(store, nodeName) };
}
