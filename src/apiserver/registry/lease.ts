// coordination.k8s.io/v1 Leases in kube-node-lease over the store: each node's heartbeat.
import type { Store } from '../../store/client.js';
import { systemClock, type Clock } from '../../util/clock.js';
import { invalidError } from '../status.js';
import type { KubeObject, ObjectMeta, StatusCause } from '../types.js';
import { mergeMetadata } from './csr.js';
import { metadataCauses } from './meta.js';
import { preconditionsOf } from './node.js';
import { ObjectStore, type ListResult, type ObjectEvent, type ObjectWatch, type Preconditions, type ResourceInfo, type WriteOptions } from './object-store.js';

export const NODE_LEASE_NAMESPACE = 'kube-node-lease';

export const LEASE_RESOURCE: ResourceInfo = {
  group: 'coordination.k8s.io',
  resource: 'leases',
  kind: 'Lease',
  apiVersion: 'coordination.k8s.io/v1',
  prefix: `/registry/leases/${NODE_LEASE_NAMESPACE}/`,
  namespace: NODE_LEASE_NAMESPACE,
  alwaysPresent: ['spec'],
};

export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  /** MicroTime: RFC 3339 with microseconds. */
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

export interface Lease extends KubeObject {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: ObjectMeta;
  spec?: LeaseSpec;
}

function leaseCauses(l: Lease): StatusCause[] {
  const causes = metadataCauses(l.metadata ?? {});
  const s = l.spec ?? {};
  if (s.leaseDurationSeconds !== undefined && (!Number.isInteger(s.leaseDurationSeconds) || s.leaseDurationSeconds <= 0)) {
    causes.push({ field: 'spec.leaseDurationSeconds', message: `Invalid value: ${s.leaseDurationSeconds}: must be greater than 0` });
  }
  if (s.leaseTransitions !== undefined && (!Number.isInteger(s.leaseTransitions) || s.leaseTransitions < 0)) {
    causes.push({ field: 'spec.leaseTransitions', message: `Invalid value: ${s.leaseTransitions}: must be greater than or equal to 0` });
  }
  for (const f of ['acquireTime', 'renewTime'] as const) {
    if (s[f] !== undefined && s[f] !== null && Number.isNaN(Date.parse(s[f]!))) causes.push({ field: `spec.${f}`, message: `Invalid value: "${s[f]}": not an RFC 3339 time` });
  }
  return causes;
}

export class LeaseRegistry {
  readonly objects: ObjectStore<Lease>;

  constructor(store: Store, clock: Clock = systemClock) {
    this.objects = new ObjectStore(store, LEASE_RESOURCE, clock);
  }

  get(name: string): Promise<Lease> {
    return this.objects.get(name);
  }

  list(): Promise<ListResult<Lease>> {
    return this.objects.list();
  }

  watch(after: bigint | undefined, onEvent: (ev: ObjectEvent<Lease>) => void): Promise<ObjectWatch> {
    return this.objects.watch(after, onEvent);
  }

  create(input: Lease, o: WriteOptions = {}): Promise<Lease> {
    const l = structuredClone(input);
    l.metadata ??= { name: '' };
    const causes = leaseCauses({ ...l, metadata: { ...l.metadata, name: l.metadata.name || (l.metadata.generateName ? `${l.metadata.generateName}x` : '') } });
    if (causes.length) throw invalidError(LEASE_RESOURCE, l.metadata.name ?? '', causes);
    return this.objects.create(l, o);
  }

  update(input: Lease, o: WriteOptions = {}): Promise<Lease> {
    return this.objects.update(
      input.metadata.name,
      (cur) => {
        const next: Lease = { ...cur, metadata: mergeMetadata(cur.metadata, input.metadata), spec: input.spec ?? {} };
        const causes = leaseCauses(next);
        if (causes.length) throw invalidError(LEASE_RESOURCE, cur.metadata.name, causes);
        return next;
      },
      preconditionsOf(input),
      o,
    );
  }

  delete(name: string, pre: Preconditions = {}, o: WriteOptions = {}): Promise<Lease> {
    return this.objects.delete(name, pre, o);
  }
}
