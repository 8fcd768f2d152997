// Revocation of one node's credentials without replacing the CA: every certificate recorded for the node is marked
// revoked in the store (so the API server and the tunnel server refuse it from then on, also after a restart), and its
// Node is marked. Joining again needs a bootstrap token made after the revocation (the approver's rule).
import type { Node, NodeRegistry } from '../apiserver/index.js';
import { credentialEntries, getNodeCredential, NODE_CREDENTIAL_PREFIX, putNodeCredential, type NodeCredential } from '../controllers/node-credentials.js';
import type { Store } from '../store/client.js';
import { TrustplaneError } from '../util/errors.js';

export const REVOKED_ANNOTATION = 'trustplane.io/credential-revoked-at';
export const REVOKED_TAINT = 'trustplane.io/credential-revoked';

export interface RevocationResult {
  node: string;
  revokedAt: string;
  /** Serials of the certificates refused from now on. */
  serials: string[];
  nodeMarked: boolean;
}

/** Marks every recorded certificate of `node` revoked (compare-and-swap, retried), then its Node. */
export async function revokeNode(store: Store, nodes: NodeRegistry, node: string, now: Date): Promise<RevocationResult> {
  const at = now.toISOString();
  let serials: string[] = [];
  for (let attempt = 0; ; attempt++) {
    const cur = await getNodeCredential(store, node);
    if (!cur) throw new TrustplaneError('NotFound', `node "${node}" holds no credential of this cluster`, 'see the nodes with `trustplane nodes list`');
    const mark = <T extends { revokedAt?: string }>(e: T): T => (e.revokedAt ? e : { ...e, revokedAt: at });
    const next: NodeCredential = { ...mark(cur.record), ...(cur.record.earlier ? { earlier: cur.record.earlier.map(mark) } : {}) };
    serials = credentialEntries(next).map((e) => e.serial);
    try {
      await putNodeCredential(store, next, cur.modRevision);
      break;
    } catch (e) {
      if (!(e instanceof TrustplaneError && e.reason === 'Conflict') || attempt >= 10) throw e;
    }
  }
  let nodeMarked = false;
  try {
    const n = await nodes.get(node);
    const taints = (n.spec?.taints ?? []).filter((t) => t.key !== REVOKED_TAINT);
    const updated = await nodes.update({
      ...n,
      metadata: { ...n.metadata, annotations: { ...(n.metadata.annotations ?? {}), [REVOKED_ANNOTATION]: at } },
      spec: { ...(n.spec ?? {}), taints: [...taints, { key: REVOKED_TAINT, effect: 'NoExecute' }] },
    });
    const conditions = (updated.status?.conditions ?? []).filter((c) => c.type !== 'Ready');
    const ready = { type: 'Ready', status: 'False' as const, reason: 'CredentialRevoked', message: `the node's client credentials were revoked at ${at}; it must join again with a new bootstrap token`, lastHeartbeatTime: at, lastTransitionTime: at };
    await nodes.updateStatus({ ...updated, status: { ...(updated.status ?? {}), conditions: [...conditions, ready] } } as Node);
    nodeMarked = true;
  } catch (e) {
    if (!(e instanceof TrustplaneError && e.reason === 'NotFound')) throw e;
  }
  return { node, revokedAt: at, serials, nodeMarked };
}

function revokedIn(value: Buffer): string[] {
  try {
    return credentialEntries(JSON.parse(value.toString('utf8')) as NodeCredential)
      .filter((e) => e.revokedAt)
      .map((e) => e.serial);
  } catch {
    return []; // a record that cannot be read revokes nothing; the signer rewrites it
  }
}

export interface RevocationList {
  has(serialHex: string): boolean;
  /** Takes a revocation this process just wrote, without waiting for the watch to bring it. */
  learn(node: string, serials: string[]): void;
  stop(): Promise<void>;
}

/**
 * Every revoked serial of the cluster, read once and then kept current from the store's watch (one record parsed per
 * change, so thousands of nodes joining cost nothing extra). `onRevoked` hears of each node with newly revoked serials.
 */
export async function followRevocations(store: Store, onRevoked: (node: string, serials: string[]) => void): Promise<RevocationList> {
  const revoked = new Set<string>();
  const r = await store.getPrefix(NODE_CREDENTIAL_PREFIX);
  for (const kv of r.kvs) for (const s of revokedIn(kv.value)) revoked.add(s);
  const learn = (node: string, serials: string[]) => {
    const added = serials.filter((s) => !revoked.has(s));
    if (added.length === 0) return;
    for (const s of added) revoked.add(s);
    onRevoked(node, added);
  };
  const watch = await store.watchPrefix(NODE_CREDENTIAL_PREFIX, { startRevision: r.revision + 1n }, (ev) => {
    if (ev.type === 'put') learn(ev.key.slice(NODE_CREDENTIAL_PREFIX.length), revokedIn(ev.value));
  });
  return { has: (s) => revoked.has(s), learn, stop: () => watch.cancel() };
}
