// What a node pool lets its nodes' serving certificates name: the address ranges and DNS suffixes an administrator set on the pool.
//
// The record lives in the cluster's store beside the pool (src/fleet/node-pools.ts writes it); the approver reads it
// to judge a kubelet serving request by what the control plane knows, never by what the node wrote about itself.
import { cidrProblem } from '../ca/profiles.js';
import type { Store } from '../store/client.js';
import { invalid } from '../util/errors.js';

export const NODE_POOL_PREFIX = '/registry/trustplane/nodepools/';

/** The serving-certificate options of a node pool. Both empty by default: a node is then certified only for its own name and the address it was seen at. */
export interface NodePoolServing {
  /** IP ranges (CIDR) a node of the pool may have in its serving certificate, beyond the address it connects from. */
  allowedCidrs?: string[];
  /** DNS suffixes: a node N of the pool may also be certified for N.<suffix>. */
  dnsSuffixes?: string[];
}

export interface NodePoolPolicy extends NodePoolServing {
  name: string;
}

const SUFFIX = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** The options checked and normalised (lower-case suffixes without a leading dot), or an Invalid error naming the bad one. */
export function checkPoolServing(o: NodePoolServing): NodePoolServing {
  const allowedCidrs = [...new Set((o.allowedCidrs ?? []).map((c) => c.trim()))];
  for (const c of allowedCidrs) {
    const p = cidrProblem(c);
    if (p) throw invalid(`node pool allowed range ${p}`, 'pass ranges like 10.0.0.0/16 or fd00::/64');
  }
  const dnsSuffixes = [...new Set((o.dnsSuffixes ?? []).map((s) => s.trim().toLowerCase().replace(/^\./, '')))];
  for (const s of dnsSuffixes) {
    if (s.length > 200 || !SUFFIX.test(s)) throw invalid(`node pool DNS suffix ${JSON.stringify(s)} is not a DNS name`, 'pass suffixes like nodes.example.com');
  }
  return { ...(allowedCidrs.length ? { allowedCidrs } : {}), ...(dnsSuffixes.length ? { dnsSuffixes } : {}) };
}

/** The pool's policy, or null when there is no such pool (deleted since the node joined: nothing beyond the defaults). */
export async function readNodePoolPolicy(store: Store, pool: string): Promise<NodePoolPolicy | null> {
  const kv = await store.get(NODE_POOL_PREFIX + pool);
  if (!kv) return null;
  try {
    const p = JSON.parse(kv.value.toString('utf8')) as NodePoolPolicy;
    return { name: p.name, ...(Array.isArray(p.allowedCidrs) ? { allowedCidrs: p.allowedCidrs } : {}), ...(Array.isArray(p.dnsSuffixes) ? { dnsSuffixes: p.dnsSuffixes } : {}) };
  } catch {
    return null;
  }
}
