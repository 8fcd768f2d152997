// The node's presence in its cluster: its Node object (addresses, agent version, Ready) and its Lease in kube-node-lease.
//
// As the kubelet: the Lease is renewed often (every 10 s) and is cheap; the Node's status is written at registration
// and then at a slower pace (every 5 min), so 15,000 nodes cost the store little.
import { readFileSync } from 'node:fs';
import { arch, platform, release, type as osType } from 'node:os';
import { NODE_LEASE_NAMESPACE, type Lease } from '../apiserver/registry/lease.js';
import { microTimestamp, timestamp } from '../apiserver/registry/meta.js';
import type { Node, NodeAddress, NodeCondition, NodeStatus } from '../apiserver/registry/node.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import { isApiError, type ApiClient } from './api-client.js';

export const NODES_PATH = '/api/v1/nodes';
export const LEASES_PATH = `/apis/coordination.k8s.io/v1/namespaces/${NODE_LEASE_NAMESPACE}/leases`;

export interface NodeFacts {
  nodeName: string;
  addresses: NodeAddress[];
  agentVersion: string;
}

function readTrimmed(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

const GOARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x' };

/** What the Node says about this machine and agent. */
export function nodeStatusOf(f: NodeFacts, now: Date, since: Date): NodeStatus {
  const t = timestamp(now);
  const ready: NodeCondition = {
    type: 'Ready',
    status: 'True',
    reason: 'NodeAgentReady',
    message: 'trustplane node agent is posting ready status',
    lastHeartbeatTime: t,
    lastTransitionTime: timestamp(since),
  };
  return {
    addresses: f.addresses,
    conditions: [ready],
    daemonEndpoints: { kubeletEndpoint: { Port: 0 } },
    nodeInfo: {
      machineID: readTrimmed('/etc/machine-id') ?? '',
      systemUUID: '',
      bootID: readTrimmed('/proc/sys/kernel/random/boot_id') ?? '',
      kernelVersion: release(),
      osImage: readTrimmed('/etc/os-release')?.match(/^PRETTY_NAME="?([^"\n]*)"?$/m)?.[1] ?? osType(),
      containerRuntimeVersion: '',
      kubeletVersion: `trustplane-node/${f.agentVersion}`,
      kubeProxyVersion: '',
      operatingSystem: platform(),
      architecture: GOARCH[arch()] ?? arch(),
    },
  };
}

/** Conditions merged by type: ours replace theirs, others' stay. */
function mergeConditions(theirs: NodeCondition[] | undefined, ours: NodeCondition[]): NodeCondition[] {
  const out = (theirs ?? []).filter((c) => !ours.some((o) => o.type === c.type));
  for (const o of ours) {
    const old = theirs?.find((c) => c.type === o.type);
    out.push(old && old.status === o.status && old.lastTransitionTime ? { ...o, lastTransitionTime: old.lastTransitionTime } : o);
  }
  return out;
}

export interface HeartbeatOptions {
  api: () => ApiClient;
  facts: NodeFacts;
  clock: Clock;
  log: Logger;
  /** Lease renewal period; default 10 s. */
  leaseIntervalMs?: number;
  /** spec.leaseDurationSeconds; default 40, as the kubelet. */
  leaseDurationSeconds?: number;
  /** Node status period; default 5 min. */
  statusIntervalMs?: number;
}

export interface HeartbeatStatus {
  lastLeaseRenewal?: string;
  lastNodeStatus?: string;
  lastError?: string;
}

/** Registers the Node, then keeps its Lease renewed and its status fresh until stopped. */
export class NodeHeartbeat {
  private leaseTimer: NodeJS.Timeout | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly since: Date;
  private nodeUid: string | undefined;
  private inflight = new Set<Promise<unknown>>();
  readonly status: HeartbeatStatus = {};

  constructor(private readonly o: HeartbeatOptions) {
    this.since = o.clock.now();
  }

  private get name(): string {
    return this.o.facts.nodeName;
  }

  /** Creates the Node, or brings an existing one's status up to date. */
  async registerNode(): Promise<Node> {
    const api = this.o.api();
    const now = this.o.clock.now();
    const ours = nodeStatusOf(this.o.facts, now, this.since);
    for (let attempt = 0; ; attempt++) {
      let cur: Node | undefined;
      try {
        cur = await api.get<Node>(`${NODES_PATH}/${this.name}`);
      } catch (e) {
        if (!isApiError(e, 404)) throw e;
      }
      try {
        let node: Node;
        if (!cur) {
          node = await api.post<Node>(NODES_PATH, {
            apiVersion: 'v1',
            kind: 'Node',
            metadata: {
              name: this.name,
              labels: { 'kubernetes.io/hostname': this.name, 'kubernetes.io/os': ours.nodeInfo!.operatingSystem!, 'kubernetes.io/arch': ours.nodeInfo!.architecture! },
            },
            spec: {},
            status: ours,
          });
          this.o.log.info({ node: this.name }, 'registered the Node');
        } else {
          const status: NodeStatus = { ...cur.status, ...ours, conditions: mergeConditions(cur.status?.conditions, ours.conditions!) };
          node = await api.put<Node>(`${NODES_PATH}/${this.name}/status`, { ...cur, status });
        }
        this.nodeUid = node.metadata.uid;
        this.status.lastNodeStatus = timestamp(now);
        return node;
      } catch (e) {
        if ((isApiError(e, 409) && attempt < 5)) continue;
        throw e;
      }
    }
  }

  /** Creates or renews the node's Lease. */
  async renewLease(): Promise<Lease> {
    const api = this.o.api();
    const now = microTimestamp(this.o.clock.now());
    const spec = { holderIdentity: this.name, leaseDurationSeconds: this.o.leaseDurationSeconds ?? 40, renewTime: now };
    for (let attempt = 0; ; attempt++) {
      let cur: Lease | undefined;
      try {
        cur = await api.get<Lease>(`${LEASES_PATH}/${this.name}`);
      } catch (e) {
        if (!isApiError(e, 404)) throw e;
      }
      try {
        const lease = cur
          ? await api.put<Lease>(`${LEASES_PATH}/${this.name}`, { ...cur, spec: { ...cur.spec, ...spec } })
          : await api.post<Lease>(LEASES_PATH, {
              apiVersion: 'coordination.k8s.io/v1',
              kind: 'Lease',
              metadata: {
                name: this.name,
                namespace: NODE_LEASE_NAMESPACE,
                ...(this.nodeUid ? { ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: this.name, uid: this.nodeUid }] } : {}),
              },
              spec: { ...spec, acquireTime: now, leaseTransitions: 0 },
            });
        this.status.lastLeaseRenewal = now;
        return lease;
      } catch (e) {
        if ((isApiError(e, 409) && attempt < 5)) continue;
        throw e;
      }
    }
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p)).catch(() => undefined);
    return p;
  }

  /** Starts the periodic Lease renewal and status updates (the first ones run now). */
  start(): void {
    const leaseEvery = this.o.leaseIntervalMs ?? 10_000;
    const statusEvery = this.o.statusIntervalMs ?? 300_000;
    const leaseLoop = async () => {
      try {
        await this.track(this.renewLease());
        this.status.lastError = undefined;
      } catch (e) {
        this.status.lastError = `renewing the Lease: ${(e as Error).message}`;
        this.o.log.warn({ err: (e as Error).message }, 'renewing the node Lease failed');
      }
      if (!this.stopped) this.leaseTimer = setTimeout(leaseLoop, leaseEvery);
    };
    const statusLoop = async () => {
      try {
        await this.track(this.registerNode());
      } catch (e) {
        this.status.lastError = `updating the Node status: ${(e as Error).message}`;
        this.o.log.warn({ err: (e as Error).message }, 'updating the Node status failed');
      }
      if (!this.stopped) this.statusTimer = setTimeout(statusLoop, statusEvery);
    };
    void leaseLoop();
    this.statusTimer = setTimeout(statusLoop, statusEvery);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.leaseTimer);
    clearTimeout(this.statusTimer);
    await Promise.allSettled([...this.inflight]);
  }
}
