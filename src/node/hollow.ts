// Hollow nodes (as Kubernetes' kubemark): N lightweight node agents in one process — real keys, CSRs, mTLS and tunnels —
// to load a control plane with a fleet of nodes it cannot tell from real ones, at a fraction of their cost.
//
// What a hollow node does as the real agent (`agent.ts`) does, through the same pieces: its own P-256 keys, the client CSR
// with the bootstrap token and the serving CSR over mTLS (`requestCertificate`), Node registration (`NodeHeartbeat`),
// its endpoint (`startNodeEndpoint`) served only through its own tunnel connection (`startTunnelAgent`).
// What it leaves out, because it costs the process and not the control plane: a data dir (state in memory), a log file
// (/logs is empty), discovery per node (the pinned CA is authenticated once per process; every node still runs its own
// TLS handshakes), certificate renewal at 70-90 % of its life (a run is shorter than a certificate's life), and a timer
// per node (one LeaseWheel spreads all Lease renewals over the period; each renewal is one PUT of the Lease last seen,
// as the kubelet).
// A rotation of the cluster root CA is followed as the agent follows it (TrustFollower): from the trust header of its
// own answers a node trusts the new bundle (cluster-info read once per process per change) and re-issues both
// certificates under the new generation, after a random delay and under a process-wide limit, so a large fleet does
// not ask at once.
import { systemClock, type Clock } from '../util/clock.js';
import { TrustplaneError, invalid } from '../util/errors.js';
import { silentLogger, type Logger } from '../util/log.js';
import type { MinVersion } from '../tls/policy.js';
import type { Backoff } from '../tunnel/agent.js';
import { agentVersion, DEFAULT_WAIT_TIMEOUT_MS } from './agent.js';
import { parseCaCertHash } from './ca-pin.js';
import { discoverCluster } from './discovery.js';
import { ClusterBundle } from './hollow/cluster-bundle.js';
import { HollowNode, type HollowJoinStep, type HollowNodeStatus } from './hollow/hollow-node.js';
import { InFlightLimit } from './hollow/in-flight-limit.js';
import { LeaseWheel, type LeaseWheelStats } from './hollow/lease-wheel.js';

export type { HollowJoinStep, HollowNodeStatus, HollowNodePhase } from './hollow/hollow-node.js';
export type { LeaseWheelStats } from './hollow/lease-wheel.js';

const TOKEN_FORMAT = /^[a-z0-9]{6}\.[a-z0-9]{16}$/;
const NAME_PREFIX = /^[a-z0-9]([-a-z0-9.]*[-a-z0-9])?$/;

export interface HollowNodesOptions {
  /** The API server, https://HOST:PORT. */
  server: string;
  /** A bootstrap token "<id>.<secret>" every node joins with (not one bound to a node name). */
  token: string;
  /** kubeadm-style CA public key pins, "sha256:<hex>"; the cluster is discovered and authenticated once for all nodes. */
  caCertHash?: string | string[];
  /** PEM file with the cluster root CA, instead of or besides a hash. */
  caFile?: string;
  count: number;
  /** Node names are <prefix><index>, index from 0, zero-padded to the width of count-1; default "hollow-". */
  namePrefix?: string;
  /** Joins in progress at once; default 32. */
  concurrency?: number;
  /** How long to wait for each certificate, and for the tunnel; default 2 min. */
  waitTimeoutMs?: number;
  /** Lease renewal period (default 10 s, as the kubelet) and duration (default 40 s). */
  leaseIntervalMs?: number;
  leaseDurationSeconds?: number;
  /** Lease renewals in flight at most across all nodes; default 512. */
  maxLeaseRenewalsInFlight?: number;
  /**
   * When a rotation of the cluster root CA reaches a node (from the trust header of its own answers, within a Lease
   * period), it re-issues its certificates after a random 0..rotationJitterMs; default 10 s.
   */
  rotationJitterMs?: number;
  /** Certificate re-issues in flight at most across all nodes; default the join concurrency. */
  maxReissuesInFlight?: number;
  /** Called after every node that joins or fails, and once when all are done. */
  onProgress?: (p: HollowProgress, node?: HollowNodeStatus) => void;
  tunnelBackoff?: Backoff;
  clock?: Clock;
  log?: Logger;
  minVersion?: MinVersion;
}

export interface HollowProgress {
  count: number;
  /** Joins started (including those done). */
  started: number;
  /** Nodes whose Node is Ready and whose tunnel was accepted. */
  ready: number;
  failed: number;
  /** Since the first join started. */
  elapsedMs: number;
  /** True once every node is ready or failed (or the fleet was closed). */
  done: boolean;
}

export interface HollowJoinSummary extends HollowProgress {
  /** Ready nodes per second over the whole join. */
  joinRatePerSecond: number;
  /** Per-node join time, token to Ready with the tunnel up. */
  joinMs: { p50: number; p90: number; p99: number; max: number };
  /** Median time of each step of a join (client certificate, Node and Lease, serving certificate, tunnel), in ms. */
  stepMsP50: Partial<Record<HollowJoinStep, number>>;
  /** The first few distinct failure messages. */
  errors: string[];
}

export interface HollowNodes {
  /** The API server and tunnel server the nodes use, and the newest CA bundle they trust. */
  readonly server: string;
  readonly tunnelServer: string | undefined;
  readonly caBundle: string;
  readonly names: readonly string[];
  progress(): HollowProgress;
  /** Resolves when every node is ready or failed (never rejects). */
  readonly joined: Promise<HollowJoinSummary>;
  summary(): HollowJoinSummary;
  node(name: string): HollowNodeStatus | undefined;
  /** The client and serving certificate chains (PEM, no key) of a node that has them. */
  certificates(name: string): { client?: string; serving?: string } | undefined;
  leaseStats(): LeaseWheelStats;
  /** How the fleet follows a rotation of the cluster root CA; `signer` (hex authority key id) counts the nodes on it. */
  trustStats(signer?: string): HollowTrustStats;
  /** Stops joining, then stops every node (closing its connections and tunnel); resolves when all are closed. */
  close(): Promise<void>;
}

export interface HollowTrustStats {
  /** Digest of the newest bundle read from cluster-info, and how often it was read. */
  bundleDigest: string;
  bundleReads: number;
  /** Nodes trusting that bundle now. */
  nodesOnBundle: number;
  /** Nodes whose client and serving certificates were both issued by `signer` (when given). */
  nodesOnSigner?: number;
  /** Summed over nodes. */
  followUps: number;
  reissued: number;
  failures: number;
  reissuesInFlight: number;
  reissuesQueued: number;
  /** The first few distinct failure messages. */
  errors: string[];
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** The node names of a hollow fleet: <prefix><index>, zero-padded so they sort in join order. */
export function hollowNodeNames(prefix: string, count: number): string[] {
  const width = String(Math.max(0, count - 1)).length;
  return Array.from({ length: count }, (_, i) => `${prefix}${String(i).padStart(width, '0')}`);
}

/**
 * Discovers the cluster once (pinned CA, as `node join`), then joins `count` hollow nodes with at most `concurrency`
 * joins in flight. Returns at once; `joined` resolves when all are ready or failed. Rejects only when the cluster
 * cannot be discovered or the options are wrong.
 */
export async function startHollowNodes(o: HollowNodesOptions): Promise<HollowNodes> {
  if (!Number.isInteger(o.count) || o.count < 1) throw invalid(`--count ${o.count} is not a positive whole number`);
  if (!TOKEN_FORMAT.test(o.token)) throw invalid('--token is not a bootstrap token', 'a token looks like abcdef.0123456789abcdef');
  const prefix = o.namePrefix ?? 'hollow-';
  if (!NAME_PREFIX.test(prefix) || prefix.length > 200) throw invalid(`--name-prefix "${prefix}" cannot start a node name`, 'use lower-case letters, digits, "-" and "."');
  const concurrency = o.concurrency ?? 32;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw invalid(`--concurrency ${concurrency} is not a positive whole number`);
  const jitter = o.rotationJitterMs ?? 10_000;
  if (!Number.isFinite(jitter) || jitter < 0) throw invalid(`rotationJitterMs ${jitter} is not a duration`);
  const reissues = new InFlightLimit(o.maxReissuesInFlight ?? concurrency);
  const clock = o.clock ?? systemClock;
  const log = o.log ?? silentLogger;
  const pins = (Array.isArray(o.caCertHash) ? o.caCertHash : o.caCertHash ? [o.caCertHash] : []).map(parseCaCertHash);
  const found = await discoverCluster({ server: o.server, caCertHashes: pins, caFile: o.caFile, minVersion: o.minVersion, timeoutMs: 15_000 });

  const wheel = new LeaseWheel({ periodMs: o.leaseIntervalMs ?? 10_000, maxInFlight: o.maxLeaseRenewalsInFlight });
  const context = {
    server: found.server,
    bundle: new ClusterBundle(found.caBundle, found.server),
    tunnelServer: found.tunnelServer,
    token: o.token,
    agentVersion: `${agentVersion()}-hollow`,
    waitTimeoutMs: o.waitTimeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS,
    leaseDurationSeconds: o.leaseDurationSeconds ?? 40,
    wheel,
    clock,
    log,
    minVersion: o.minVersion,
    tunnelBackoff: o.tunnelBackoff,
    rotationJitterMs: jitter,
    reissues,
  };
  const names = hollowNodeNames(prefix, o.count);
  const nodes = new Map(names.map((n) => [n, new HollowNode(n, context)]));
  const counts = { started: 0, ready: 0, failed: 0 };
  const errors = new Set<string>();
  const t0 = performance.now();
  let finishedAt: number | undefined;
  let closing: Promise<void> | undefined;

  const progress = (): HollowProgress => ({
    count: o.count,
    ...counts,
    elapsedMs: (finishedAt ?? performance.now()) - t0,
    done: finishedAt !== undefined,
  });
  const summary = (): HollowJoinSummary => {
    const p = progress();
    const joinedNodes = [...nodes.values()].filter((n) => n.joinMs !== undefined);
    const times = joinedNodes.map((n) => n.joinMs!).sort((a, b) => a - b);
    const stepMsP50: Partial<Record<HollowJoinStep, number>> = {};
    for (const k of ['clientCertificate', 'register', 'servingCertificate', 'tunnel'] as const) {
      const v = joinedNodes.flatMap((n) => (n.steps[k] === undefined ? [] : [n.steps[k]!])).sort((a, b) => a - b);
      if (v.length) stepMsP50[k] = Math.round(quantile(v, 0.5));
    }
    return {
      ...p,
      joinRatePerSecond: p.elapsedMs > 0 ? counts.ready / (p.elapsedMs / 1000) : 0,
      joinMs: { p50: quantile(times, 0.5), p90: quantile(times, 0.9), p99: quantile(times, 0.99), max: times.at(-1) ?? 0 },
      stepMsP50,
      errors: [...errors],
    };
  };
  const report = (n?: HollowNode) => {
    try {
      o.onProgress?.(progress(), n?.status());
    } catch (e) {
      log.warn({ err: (e as Error).message }, 'the hollow nodes progress callback failed');
    }
  };

  // Bounded concurrency: `concurrency` workers take the next node until none is left or the fleet is closing.
  const queue = [...nodes.values()];
  const worker = async () => {
    for (let n = queue.shift(); n && !closing; n = queue.shift()) {
      counts.started++;
      try {
        await n.join();
        counts.ready++;
      } catch (e) {
        if (closing) return;
        counts.failed++;
        if (errors.size < 5) errors.add((e as Error).message);
        log.warn({ node: n.name, err: (e as Error).message }, 'a hollow node could not join');
      }
      report(n);
    }
  };
  const joined = Promise.all(Array.from({ length: Math.min(concurrency, o.count) }, worker)).then(() => {
    finishedAt = performance.now();
    report();
    return summary();
  });

  return {
    server: found.server,
    tunnelServer: found.tunnelServer,
    get caBundle() {
      return context.bundle.current.pem;
    },
    names,
    progress,
    joined,
    summary,
    node: (name) => nodes.get(name)?.status(),
    certificates(name) {
      const n = nodes.get(name);
      return n && { client: n.client?.cert, serving: n.serving?.cert };
    },
    leaseStats: () => wheel.stats(),
    trustStats(signer?: string) {
      const bundle = context.bundle.current;
      const out: HollowTrustStats = { bundleDigest: bundle.digest, bundleReads: context.bundle.reads, nodesOnBundle: 0, followUps: 0, reissued: 0, failures: 0, reissuesInFlight: reissues.inFlight, reissuesQueued: reissues.queued, errors: [] };
      if (signer !== undefined) out.nodesOnSigner = 0;
      for (const n of nodes.values()) {
        const s = n.status();
        if (s.trust.bundleDigest === bundle.digest) out.nodesOnBundle++;
        if (signer !== undefined && s.clientIssuer === signer && s.servingIssuer === signer) out.nodesOnSigner!++;
        out.followUps += s.trust.followUps;
        out.reissued += s.trust.reissued;
        out.failures += s.trust.failures;
        if (s.trust.lastError && out.errors.length < 5 && !out.errors.includes(s.trust.lastError)) out.errors.push(s.trust.lastError);
      }
      return out;
    },
    close() {
      closing ??= (async () => {
        queue.length = 0;
        await wheel.stop();
        // In batches, so closing 15,000 tunnels does not open 15,000 promises' worth of work at once.
        const all = [...nodes.values()];
        for (let i = 0; i < all.length; i += 500) await Promise.all(all.slice(i, i + 500).map((n) => n.stop()));
        await joined;
      })();
      return closing;
    },
  };
}

/** A hollow fleet whose every node failed says why, once, as the error a user reads. */
export function hollowFailure(s: HollowJoinSummary): TrustplaneError | undefined {
  if (s.ready > 0 || s.failed === 0) return undefined;
  return new TrustplaneError('Unavailable', `no hollow node could join: ${s.errors[0] ?? 'unknown error'}`, 'check the token (not bound to a node name, not expired) and that the control plane is running');
}
