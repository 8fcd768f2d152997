// v1 Nodes over the store: the main resource keeps status as it is, the status subresource changes only status.
import type { Store } from '../../store/client.js';
import { systemClock, type Clock } from '../../util/clock.js';
import { invalidError } from '../status.js';
import type { KubeObject, ObjectMeta, StatusCause } from '../types.js';
import { mergeMetadata } from './csr.js';
import { metadataCauses } from './meta.js';
import { ObjectStore, type ListResult, type ObjectEvent, type ObjectWatch, type Preconditions, type ResourceInfo, type WriteOptions } from './object-store.js';

export const NODE_RESOURCE: ResourceInfo = { group: '', resource: 'nodes', kind: 'Node', apiVersion: 'v1', prefix: '/registry/minions/', alwaysPresent: ['spec', 'status'] };

export interface NodeAddress {
  type: 'InternalIP' | 'ExternalIP' | 'Hostname' | 'InternalDNS' | 'ExternalDNS' | (string & {});
  address: string;
}

export interface NodeCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  lastHeartbeatTime?: string;
  lastTransitionTime?: string;
  reason?: string;
  message?: string;
}

export interface NodeTaint {
  key: string;
  value?: string;
  effect: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';
  timeAdded?: string;
}

export interface NodeSpec {
  podCIDR?: string;
  podCIDRs?: string[];
  providerID?: string;
  unschedulable?: boolean;
  taints?: NodeTaint[];
}

export interface NodeSystemInfo {
  machineID?: string;
  systemUUID?: string;
  bootID?: string;
  kernelVersion?: string;
  osImage?: string;
  containerRuntimeVersion?: string;
  kubeletVersion?: string;
  kubeProxyVersion?: string;
  operatingSystem?: string;
  architecture?: string;
}

export interface NodeStatus {
  capacity?: Record<string, string>;
  allocatable?: Record<string, string>;
  conditions?: NodeCondition[];
  addresses?: NodeAddress[];
  daemonEndpoints?: { kubeletEndpoint?: { Port: number } };
  nodeInfo?: NodeSystemInfo;
  [more: string]: unknown;
}

export interface Node extends KubeObject {
  apiVersion: 'v1';
  kind: 'Node';
  metadata: ObjectMeta;
  spec?: NodeSpec;
  status?: NodeStatus;
}

function nodeCauses(n: Node): StatusCause[] {
  const causes = metadataCauses(n.metadata ?? {});
  for (const [i, t] of (n.spec?.taints ?? []).entries()) {
    if (!t || typeof t.key !== 'string' || t.key === '') causes.push({ field: `spec.taints[${i}].key`, reason: 'FieldValueRequired', message: 'Required value' });
    if (!['NoSchedule', 'PreferNoSchedule', 'NoExecute'].includes(t?.effect)) {
      causes.push({ field: `spec.taints[${i}].effect`, reason: 'FieldValueNotSupported', message: `Unsupported value: "${t?.effect}": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"` });
    }
  }
  for (const [i, a] of (n.status?.addresses ?? []).entries()) {
    if (!a || typeof a.address !== 'string' || a.address === '' || typeof a.type !== 'string' || a.type === '') {
      causes.push({ field: `status.addresses[${i}]`, reason: 'FieldValueRequired', message: 'Required value: type and address' });
    }
  }
  for (const [i, c] of (n.status?.conditions ?? []).entries()) {
    if (!c || typeof c.type !== 'string' || !['True', 'False', 'Unknown'].includes(c.status)) {
      causes.push({ field: `status.conditions[${i}]`, message: 'Invalid value: a condition needs a type and a status of "True", "False" or "Unknown"' });
    }
  }
  return causes;
}

export interface NodeWriteOptions extends WriteOptions {
  /** Sees the object about to be written (and the current one on update); throws to refuse. */
  admit?: (next: Node, current: Node | undefined) => void;
}

/** Label prefixes a node may not set on itself (as Kubernetes' NodeRestriction): they steer trust and placement. */
export const NODE_RESTRICTED_LABEL_PREFIXES = ['node-role.kubernetes.io/', 'node-restriction.kubernetes.io/'];

/** The restricted labels whose value differs between two label sets. */
export function restrictedLabelChanges(before: Record<string, string> | undefined, after: Record<string, string> | undefined): string[] {
  const keys = new Set([...Object.keys(before ?? {}), ...Object.keys(after ?? {})]);
  return [...keys].filter((k) => NODE_RESTRICTED_LABEL_PREFIXES.some((p) => k.startsWith(p)) && before?.[k] !== after?.[k]).sort();
}

export class NodeRegistry {
  readonly objects: ObjectStore<Node>;

  constructor(store: Store, clock: Clock = systemClock) {
    this.objects = new ObjectStore(store, NODE_RESOURCE, clock);
  }

  get(name: string): Promise<Node> {
    return this.objects.get(name);
  }

  list(): Promise<ListResult<Node>> {
    return this.objects.list();
  }

  watch(after: bigint | undefined, onEvent: (ev: ObjectEvent<Node>) => void): Promise<ObjectWatch> {
    return this.objects.watch(after, onEvent);
  }

  /** Nodes may be created with their status, as a kubelet registers itself. `admit` may refuse the final object. */
  create(input: Node, o: NodeWriteOptions = {}): Promise<Node> {
    const n = structuredClone(input);
    n.metadata ??= { name: '' };
    const causes = nodeCauses({ ...n, metadata: { ...n.metadata, name: n.metadata.name || (n.metadata.generateName ? `${n.metadata.generateName}x` : '') } });
    if (causes.length) throw invalidError(NODE_RESOURCE, n.metadata.name ?? '', causes);
    return this.objects.create(n, o, (final) => o.admit?.(final, undefined));
  }

  /** The main resource: metadata and spec; status stays as it is. */
  update(input: Node, o: NodeWriteOptions = {}): Promise<Node> {
    return this.objects.update(
      input.metadata.name,
      (cur) => {
        const next = this.checked({ ...cur, metadata: mergeMetadata(cur.metadata, input.metadata), spec: input.spec ?? {}, status: cur.status });
        o.admit?.(next, cur);
        return next;
      },
      preconditionsOf(input),
      o,
    );
  }

  /** The status subresource: status only. */
  updateStatus(input: Node, o: WriteOptions = {}): Promise<Node> {
    return this.objects.update(input.metadata.name, (cur) => this.checked({ ...cur, status: input.status ?? {} }), preconditionsOf(input), o);
  }

  delete(name: string, pre: Preconditions = {}, o: WriteOptions = {}): Promise<Node> {
    return this.objects.delete(name, pre, o);
  }

  private checked(n: Node): Node {
    if (n.status === undefined) delete n.status;
    const causes = nodeCauses(n);
    if (causes.length) throw invalidError(NODE_RESOURCE, n.metadata.name, causes);
    return n;
  }
}

export function preconditionsOf(o: KubeObject): Preconditions {
  return { resourceVersion: o.metadata.resourceVersion, uid: o.metadata.uid };
}
