// What the nodes of one cluster hold, counted for metrics: per cluster root CA generation, and how many are close to the
// end of their certificate's life. Counts per cluster, never per node, so that 15,000 nodes stay a handful of series.
import { liveCredential, type NodeCredential } from '../controllers/node-credentials.js';

/** A node's certificate with this fraction of its life or less left has missed its renewal (agents renew at 70-90 %). */
export const NEAR_EXPIRY_LIFE_FRACTION = 0.1;

export interface NodeCredentialSummary {
  /** Nodes per generation of their newest live client certificate. */
  byGeneration: Map<number, number>;
  /** Nodes whose newest live client certificate has NEAR_EXPIRY_LIFE_FRACTION or less of its lifetime left. */
  nearExpiry: number;
}

/** Life left as a fraction of the whole (not-before, recorded as issuedAt, to not-after); 0 once expired. */
export function lifeLeftFraction(entry: { issuedAt: string; notAfter: string }, now: Date): number {
  const from = Date.parse(entry.issuedAt);
  const to = Date.parse(entry.notAfter);
  if (!(to > from)) return 0;
  return Math.min(1, Math.max(0, (to - now.getTime()) / (to - from)));
}

export function summarizeNodeCredentials(records: Iterable<NodeCredential>, now: Date): NodeCredentialSummary {
  const byGeneration = new Map<number, number>();
  let nearExpiry = 0;
  for (const record of records) {
    const live = liveCredential(record, now);
    if (!live) continue;
    byGeneration.set(live.generation, (byGeneration.get(live.generation) ?? 0) + 1);
    if (lifeLeftFraction(live, now) <= NEAR_EXPIRY_LIFE_FRACTION) nearExpiry++;
  }
  return { byGeneration, nearExpiry };
}
