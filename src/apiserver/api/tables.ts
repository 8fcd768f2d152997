// meta.k8s.io/v1 Table output: the columns kubectl get prints for CSRs, ClusterTrustBundles, Nodes and Leases, as kube-apiserver's printers make them.
import type { Clock } from '../../util/clock.js';
import type { ClusterTrustBundle } from '../registry/cluster-trust-bundle.js';
import { conditionSummary, type CertificateSigningRequest } from '../registry/csr.js';
import type { Lease } from '../registry/lease.js';
import type { Node } from '../registry/node.js';
import type { KubeObject } from '../types.js';

export interface ColumnDefinition {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  format: string;
  description: string;
  priority: number;
}

export interface Table {
  kind: 'Table';
  apiVersion: 'meta.k8s.io/v1';
  metadata: { resourceVersion?: string; continue?: string };
  columnDefinitions?: ColumnDefinition[];
  rows: Array<{ cells: unknown[]; object?: unknown }>;
}

export type IncludeObject = 'None' | 'Metadata' | 'Object';

export interface Printer {
  columns: ColumnDefinition[];
  cells(obj: KubeObject, now: Date): unknown[];
}

/** Kubernetes' duration.HumanDuration: "45s", "3m20s", "5h10m", "12d", "2y30d". */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 60 * 2) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) {
    const s = seconds % 60;
    return s === 0 ? `${minutes}m` : `${minutes}m${s}s`;
  }
  if (minutes < 60 * 3) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) {
    const m = minutes % 60;
    return m === 0 ? `${hours}h` : `${hours}h${m}m`;
  }
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) {
    const h = hours % 24;
    return h === 0 ? `${Math.floor(hours / 24)}d` : `${Math.floor(hours / 24)}d${h}h`;
  }
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24)}d`;
  if (hours < 24 * 365 * 8) {
    const dy = Math.floor(hours / 24) % 365;
    return dy === 0 ? `${Math.floor(hours / 24 / 365)}y` : `${Math.floor(hours / 24 / 365)}y${dy}d`;
  }
  return `${Math.floor(hours / 24 / 365)}y`;
}

const col = (name: string, description: string, priority = 0, format = ''): ColumnDefinition => ({ name, type: 'string', format, description, priority });
const NAME = col('Name', 'Name must be unique within a namespace.', 0, 'name');
const AGE = col('Age', 'CreationTimestamp: when the object was created.');

function age(obj: KubeObject, now: Date): string {
  const t = obj.metadata.creationTimestamp;
  return t ? humanDuration(now.getTime() - Date.parse(t)) : '<unknown>';
}

export const CSR_PRINTER: Printer = {
  columns: [
    NAME,
    AGE,
    col('SignerName', 'The signer asked to issue the certificate.'),
    col('Requestor', 'Who created the request.'),
    col('RequestedDuration', 'The certificate lifetime asked for.'),
    col('Condition', 'Approval and issuance state.'),
  ],
  cells(obj, now) {
    const csr = obj as CertificateSigningRequest;
    const d = csr.spec?.expirationSeconds;
    return [csr.metadata.name, age(csr, now), csr.spec?.signerName ?? '<none>', csr.spec?.username ?? '', d ? humanDuration(d * 1000) : '<none>', conditionSummary(csr)];
  },
};

/** As kube-apiserver's printClusterTrustBundle: the name and the signer, no age. */
export const CLUSTER_TRUST_BUNDLE_PRINTER: Printer = {
  columns: [NAME, col('SignerName', 'The signer whose trust anchors the bundle holds, if any.')],
  cells(obj) {
    const b = obj as ClusterTrustBundle;
    return [b.metadata.name, b.spec?.signerName || '<none>'];
  },
};

function nodeStatus(n: Node): string {
  const ready = (n.status?.conditions ?? []).find((c) => c.type === 'Ready');
  let s = !ready ? 'Unknown' : ready.status === 'True' ? 'Ready' : 'NotReady';
  if (n.spec?.unschedulable) s += ',SchedulingDisabled';
  return s;
}

function nodeRoles(n: Node): string {
  const roles = new Set<string>();
  for (const [k, v] of Object.entries(n.metadata.labels ?? {})) {
    if (k.startsWith('node-role.kubernetes.io/') && k.length > 'node-role.kubernetes.io/'.length) roles.add(k.slice('node-role.kubernetes.io/'.length));
    if (k === 'kubernetes.io/role' && v) roles.add(v);
  }
  return roles.size ? [...roles].sort().join(',') : '<none>';
}

const address = (n: Node, type: string) => (n.status?.addresses ?? []).find((a) => a.type === type)?.address ?? '<none>';

export const NODE_PRINTER: Printer = {
  columns: [
    NAME,
    col('Status', 'The status of the node'),
    col('Roles', 'The roles of the node'),
    AGE,
    col('Version', 'Kubelet Version reported by the node.'),
    col('Internal-IP', 'List of internal IPs.', 1),
    col('External-IP', 'List of external IPs.', 1),
    col('OS-Image', 'OS Image reported by the node.', 1),
    col('Kernel-Version', 'Kernel Version reported by the node.', 1),
    col('Container-Runtime', 'Container Runtime Version reported by the node.', 1),
  ],
  cells(obj, now) {
    const n = obj as Node;
    const info = n.status?.nodeInfo ?? {};
    const or = (s: string | undefined) => (s ? s : '<unknown>');
    return [
      n.metadata.name,
      nodeStatus(n),
      nodeRoles(n),
      age(n, now),
      info.kubeletVersion ?? '',
      address(n, 'InternalIP'),
      address(n, 'ExternalIP'),
      or(info.osImage),
      or(info.kernelVersion),
      or(info.containerRuntimeVersion),
    ];
  },
};

export const LEASE_PRINTER: Printer = {
  columns: [NAME, col('Holder', 'The holder of the lease.'), AGE],
  cells(obj, now) {
    const l = obj as Lease;
    return [l.metadata.name, l.spec?.holderIdentity ?? '<unknown>', age(l, now)];
  },
};

function rowObject(obj: KubeObject, include: IncludeObject): unknown {
  if (include === 'None') return undefined;
  if (include === 'Object') return obj;
  return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: obj.metadata };
}

export function toTable(
  printer: Printer,
  items: KubeObject[],
  o: { clock: Clock; include: IncludeObject; resourceVersion?: string; noHeaders?: boolean },
): Table {
  const now = o.clock.now();
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: o.resourceVersion ? { resourceVersion: o.resourceVersion } : {},
    ...(o.noHeaders ? {} : { columnDefinitions: printer.columns }),
    rows: items.map((it) => {
      const ob = rowObject(it, o.include);
      return ob === undefined ? { cells: printer.cells(it, now) } : { cells: printer.cells(it, now), object: ob };
    }),
  };
}
