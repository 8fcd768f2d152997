// What the web console shows, as plain JSON read from the fleet: the clusters with status, and per cluster its authorities' generations, rotation and nodes.
import { AUTHORITY_KINDS, authorityTitle } from '../ca/authority.js';
import { listNodeCredentials, liveCredential } from '../controllers/node-credentials.js';
import type { ClusterStatus, CredentialLifetime, FleetCluster } from '../fleet/api.js';
import type { Fleet } from '../fleet/fleet.js';
import { ROOT_DEGRADED_BEFORE_S, rotateBeforeS } from '../fleet/lifetime.js';
import type { RotationRecord } from '../fleet/rotation.js';
import { isRunning } from '../fleet/rotation.js';

export interface ConsoleOverview {
  now: string;
  clusters: Array<{ name: string; status: ClusterStatus; statusMessage: string; rotationPhase?: string; rootNotAfter?: string; nodes?: number }>;
}

export interface ConsoleGeneration {
  generation: number;
  state: string;
  notBefore?: string;
  notAfter?: string;
  secondsLeft?: number;
}

export interface ConsoleAuthority {
  kind: string;
  title: string;
  generations: ConsoleGeneration[];
  /** Lines drawn on the timeline, before the active generation's not-after: when a rotation starts, when the cluster is DEGRADED. */
  thresholds: Array<{ kind: 'rotation' | 'degraded'; label: string; secondsBefore: number }>;
  next: { action: string; at: string; why: string };
}

export interface ConsoleNode {
  name: string;
  /** The cluster root CA generation of its newest live client certificate. */
  generation: number;
  notAfter: string;
  secondsLeft: number;
  pool?: string;
  address?: string;
}

export interface ConsoleCluster {
  name: string;
  now: string;
  status: ClusterStatus;
  statusMessage: string;
  endpoint: string;
  authorities: ConsoleAuthority[];
  rotation?: RotationRecord & { running: boolean };
  /** While a rotation waits in phase moving: the nodes (or etcd members) it waits for. */
  waitingFor?: string[];
  nodesByGeneration: Array<{ generation: number; nodes: number }>;
  /** The MAX_NODES_SHOWN nodes whose client certificates expire first (a page of 65,000 rows helps nobody); nodeCount is all of them. */
  nodes: ConsoleNode[];
  nodeCount: number;
  /** While a rotation runs: the clients servers saw still presenting the old generation (as the fleet API's lifetime answer gives them). */
  observedClients?: CredentialLifetime['observedClients'];
  observedWindowSeconds?: number;
}

export const MAX_NODES_SHOWN = 200;

export async function overview(fleet: Fleet, now: Date): Promise<ConsoleOverview> {
  const clusters = await fleet.list();
  return {
    now: now.toISOString(),
    clusters: await Promise.all(
      clusters.map(async (c) => {
        const root = c.authorities.find((a) => a.kind === 'root')?.generations.find((g) => g.state === 'active');
        const nodes = await fleet.nodesByGeneration(c.name).then((m) => [...m.values()].reduce((a, b) => a + b, 0), () => undefined);
        return {
          name: c.name,
          status: c.status,
          statusMessage: c.statusMessage,
          ...(isRunning(c.rotation) ? { rotationPhase: c.rotation.phase } : {}),
          ...(root?.notAfter ? { rootNotAfter: root.notAfter } : {}),
          ...(nodes !== undefined ? { nodes } : {}),
        };
      }),
    ),
  };
}

/** One cluster for the console; NotFound (from the fleet) when there is no such cluster. */
export async function clusterSnapshot(fleet: Fleet, name: string, now: Date): Promise<ConsoleCluster> {
  const lifetime = await fleet.lifetime(name);
  const described: FleetCluster = await fleet.describe(name);
  const nodes = await nodeCredentials(fleet, name, now);
  const counts = new Map<number, number>();
  for (const n of nodes) counts.set(n.generation, (counts.get(n.generation) ?? 0) + 1);
  return {
    name,
    now: lifetime.now,
    status: lifetime.status,
    statusMessage: lifetime.statusMessage,
    endpoint: described.endpoint,
    authorities: AUTHORITY_KINDS.map((kind) => {
      const view = described.authorities.find((a) => a.kind === kind);
      const life = lifetime.authorities.find((a) => a.kind === kind);
      return {
        kind,
        title: view?.title ?? authorityTitle(kind),
        generations: (view?.generations ?? []).map((g) => ({
          generation: g.generation,
          state: g.state,
          ...(g.notBefore ? { notBefore: g.notBefore } : {}),
          ...(g.notAfter ? { notAfter: g.notAfter, secondsLeft: Math.round((Date.parse(g.notAfter) - now.getTime()) / 1000) } : {}),
        })),
        thresholds: [
          { kind: 'rotation' as const, label: `${Math.round(rotateBeforeS(kind) / 86_400)} days: rotation starts`, secondsBefore: rotateBeforeS(kind) },
          ...(kind === 'root' ? [{ kind: 'degraded' as const, label: `${ROOT_DEGRADED_BEFORE_S / 86_400} days: DEGRADED`, secondsBefore: ROOT_DEGRADED_BEFORE_S }] : []),
        ],
        next: life?.next ?? { action: 'none', at: lifetime.now, why: '' },
      };
    }),
    ...(lifetime.rotation ? { rotation: { ...lifetime.rotation, running: isRunning(lifetime.rotation) } } : {}),
    ...(lifetime.waitingFor ? { waitingFor: lifetime.waitingFor } : {}),
    nodesByGeneration: [...counts].sort(([a], [b]) => a - b).map(([generation, n]) => ({ generation, nodes: n })),
    nodes: nodes.slice(0, MAX_NODES_SHOWN),
    nodeCount: nodes.length,
    ...(lifetime.observedClients !== undefined ? { observedClients: lifetime.observedClients } : {}),
    ...(lifetime.observedWindowSeconds !== undefined ? { observedWindowSeconds: lifetime.observedWindowSeconds } : {}),
  };
}

/** Each node's newest live client certificate, the soonest to expire first, from the cluster's store (none while the cluster does not serve). */
async function nodeCredentials(fleet: Fleet, name: string, now: Date): Promise<ConsoleNode[]> {
  const rt = fleet.runtime(name);
  if (!rt) return [];
  // store() throws while the state store is not reachable: the page then shows no nodes rather than an error.
  const records = await Promise.resolve()
    .then(() => listNodeCredentials(rt.store()))
    .catch(() => []);
  const out: ConsoleNode[] = [];
  for (const { record } of records) {
    const live = liveCredential(record, now);
    if (!live) continue;
    out.push({
      name: record.node,
      generation: live.generation,
      notAfter: live.notAfter,
      secondsLeft: Math.round((Date.parse(live.notAfter) - now.getTime()) / 1000),
      ...(live.pool ?? record.pool ? { pool: live.pool ?? record.pool } : {}),
      ...(live.address ?? record.address ? { address: live.address ?? record.address } : {}),
    });
  }
  return out.sort((a, b) => a.secondsLeft - b.secondsLeft || a.name.localeCompare(b.name));
}
