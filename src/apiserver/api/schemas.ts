// The resources' OpenAPI v3 schemas: one description that serves both /openapi/v3 and server-side field validation.

export interface Schema {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  format?: string;
  description?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  required?: string[];
  enum?: string[];
  /** Either an integer or a string (quantities, int-or-string). */
  'x-kubernetes-int-or-string'?: boolean;
  /** An object whose contents are not described (kept as they are). */
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-group-version-kind'?: Array<{ group: string; version: string; kind: string }>;
  'x-kubernetes-patch-merge-key'?: string;
  'x-kubernetes-patch-strategy'?: string;
  allOf?: Schema[];
  $ref?: string;
  default?: unknown;
}

const META = 'io.k8s.apimachinery.pkg.apis.meta.v1';
const str = (description?: string): Schema => ({ type: 'string', ...(description ? { description } : {}) });
const int = (format: 'int32' | 'int64' = 'int32', description?: string): Schema => ({ type: 'integer', format, ...(description ? { description } : {}) });
const bool = (description?: string): Schema => ({ type: 'boolean', ...(description ? { description } : {}) });
const arr = (items: Schema, extra: Partial<Schema> = {}): Schema => ({ type: 'array', items, ...extra });
const map = (values: Schema): Schema => ({ type: 'object', additionalProperties: values });
const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const obj = (properties: Record<string, Schema>, extra: Partial<Schema> = {}): Schema => ({ type: 'object', properties, ...extra });
const free = (description?: string): Schema => ({ type: 'object', 'x-kubernetes-preserve-unknown-fields': true, ...(description ? { description } : {}) });
const gvk = (group: string, version: string, kind: string) => ({ 'x-kubernetes-group-version-kind': [{ group, version, kind }] });
const time = ref(`${META}.Time`);

function topLevel(group: string, kind: string, properties: Record<string, Schema>, description: string, version = 'v1'): Schema {
  return obj(
    {
      apiVersion: str('APIVersion defines the versioned schema of this representation of an object.'),
      kind: str('Kind is a string value representing the REST resource this object represents.'),
      metadata: { ...ref(`${META}.ObjectMeta`), description: "Standard object's metadata." },
      ...properties,
    },
    { description, ...gvk(group, version, kind) },
  );
}

function list(group: string, kind: string, item: string, version = 'v1'): Schema {
  return obj(
    { apiVersion: str(), kind: str(), metadata: ref(`${META}.ListMeta`), items: arr(ref(item)) },
    { required: ['items'], ...gvk(group, version, kind) },
  );
}

export const SCHEMAS: Record<string, Schema> = {
  [`${META}.Time`]: { type: 'string', format: 'date-time', description: 'RFC 3339 time, second precision.' },
  [`${META}.MicroTime`]: { type: 'string', format: 'date-time', description: 'RFC 3339 time, microsecond precision.' },
  [`${META}.OwnerReference`]: obj({
    apiVersion: str(), kind: str(), name: str(), uid: str(), controller: bool(), blockOwnerDeletion: bool(),
  }, { required: ['apiVersion', 'kind', 'name', 'uid'] }),
  [`${META}.ManagedFieldsEntry`]: obj({
    manager: str(), operation: str(), apiVersion: str(), time, fieldsType: str(), fieldsV1: free(), subresource: str(),
  }),
  [`${META}.ObjectMeta`]: obj({
    name: str('Name must be unique within a namespace (or the cluster, for cluster-scoped resources).'),
    generateName: str('Prefix of a name the server generates when name is empty.'),
    namespace: str(),
    selfLink: str(),
    uid: str(),
    resourceVersion: str('The object version: the state store revision of its last change.'),
    generation: int('int64'),
    creationTimestamp: time,
    deletionTimestamp: time,
    deletionGracePeriodSeconds: int('int64'),
    labels: map(str()),
    annotations: map(str()),
    ownerReferences: arr(ref(`${META}.OwnerReference`)),
    finalizers: arr(str()),
    managedFields: arr(ref(`${META}.ManagedFieldsEntry`)),
  }),
  [`${META}.ListMeta`]: obj({ selfLink: str(), resourceVersion: str(), continue: str(), remainingItemCount: int('int64') }),
  [`${META}.Preconditions`]: obj({ resourceVersion: str(), uid: str() }),
  [`${META}.DeleteOptions`]: obj({
    apiVersion: str(), kind: str(), gracePeriodSeconds: int('int64'), preconditions: ref(`${META}.Preconditions`),
    orphanDependents: bool(), propagationPolicy: str(), dryRun: arr(str()), ignoreStoreReadErrorWithClusterBreakingPotential: bool(),
  }),
  [`${META}.StatusCause`]: obj({ reason: str(), message: str(), field: str() }),
  [`${META}.StatusDetails`]: obj({ name: str(), group: str(), kind: str(), uid: str(), causes: arr(ref(`${META}.StatusCause`)), retryAfterSeconds: int() }),
  [`${META}.Status`]: obj({
    apiVersion: str(), kind: str(), metadata: ref(`${META}.ListMeta`), status: str(), message: str(), reason: str(),
    details: ref(`${META}.StatusDetails`), code: int(),
  }, gvk('', 'v1', 'Status')),
  'io.k8s.apimachinery.pkg.api.resource.Quantity': { type: 'string', 'x-kubernetes-int-or-string': true, description: 'A fixed-point number, e.g. "4", "16Gi", "500m".' },

  // certificates.k8s.io/v1
  'io.k8s.api.certificates.v1.CertificateSigningRequest': topLevel('certificates.k8s.io', 'CertificateSigningRequest', {
    spec: ref('io.k8s.api.certificates.v1.CertificateSigningRequestSpec'),
    status: ref('io.k8s.api.certificates.v1.CertificateSigningRequestStatus'),
  }, 'A request for a certificate from the named signer, approved or denied, then issued.'),
  'io.k8s.api.certificates.v1.CertificateSigningRequestSpec': obj({
    request: { type: 'string', format: 'byte', description: 'A PEM CERTIFICATE REQUEST, base64 in JSON.' },
    signerName: str('The signer asked to issue the certificate.'),
    expirationSeconds: int('int32', 'Requested certificate lifetime, at least 600 seconds.'),
    usages: arr(str(), { description: 'Requested key usages and extended key usages.' }),
    username: str('Set by the server: the requester.'),
    uid: str('Set by the server.'),
    groups: arr(str(), { description: 'Set by the server.' }),
    extra: map(arr(str())),
  }, { required: ['request', 'signerName'] }),
  'io.k8s.api.certificates.v1.CertificateSigningRequestStatus': obj({
    conditions: arr(ref('io.k8s.api.certificates.v1.CertificateSigningRequestCondition')),
    certificate: { type: 'string', format: 'byte', description: 'The issued certificate chain, PEM, base64 in JSON.' },
  }),
  'io.k8s.api.certificates.v1.CertificateSigningRequestCondition': obj({
    type: str(), status: str(), reason: str(), message: str(), lastUpdateTime: time, lastTransitionTime: time,
  }, { required: ['type', 'status'] }),
  'io.k8s.api.certificates.v1.CertificateSigningRequestList': list('certificates.k8s.io', 'CertificateSigningRequestList', 'io.k8s.api.certificates.v1.CertificateSigningRequest'),

  // certificates.k8s.io/v1beta1
  'io.k8s.api.certificates.v1beta1.ClusterTrustBundle': topLevel('certificates.k8s.io', 'ClusterTrustBundle', {
    spec: ref('io.k8s.api.certificates.v1beta1.ClusterTrustBundleSpec'),
  }, 'A cluster-scoped container for X.509 trust anchors (root certificates), optionally linked to a signer.', 'v1beta1'),
  'io.k8s.api.certificates.v1beta1.ClusterTrustBundleSpec': obj({
    signerName: str('The signer these trust anchors are for, if any; the name must then start with it, "/" written ":". Immutable.'),
    trustBundle: str('PEM CERTIFICATE blocks of CA certificates.'),
  }, { required: ['trustBundle'] }),
  'io.k8s.api.certificates.v1beta1.ClusterTrustBundleList': list('certificates.k8s.io', 'ClusterTrustBundleList', 'io.k8s.api.certificates.v1beta1.ClusterTrustBundle', 'v1beta1'),

  // core/v1 Node
  'io.k8s.api.core.v1.Node': topLevel('', 'Node', {
    spec: ref('io.k8s.api.core.v1.NodeSpec'),
    status: ref('io.k8s.api.core.v1.NodeStatus'),
  }, 'A node of the cluster.'),
  'io.k8s.api.core.v1.NodeSpec': obj({
    podCIDR: str(), podCIDRs: arr(str()), providerID: str(), unschedulable: bool(),
    taints: arr(ref('io.k8s.api.core.v1.Taint')), configSource: free(), externalID: str(),
  }),
  'io.k8s.api.core.v1.Taint': obj({ key: str(), value: str(), effect: str(), timeAdded: time }, { required: ['key', 'effect'] }),
  'io.k8s.api.core.v1.NodeStatus': obj({
    capacity: map(ref('io.k8s.apimachinery.pkg.api.resource.Quantity')),
    allocatable: map(ref('io.k8s.apimachinery.pkg.api.resource.Quantity')),
    phase: str(),
    conditions: arr(ref('io.k8s.api.core.v1.NodeCondition'), { 'x-kubernetes-patch-merge-key': 'type', 'x-kubernetes-patch-strategy': 'merge' }),
    addresses: arr(ref('io.k8s.api.core.v1.NodeAddress'), { 'x-kubernetes-patch-merge-key': 'type', 'x-kubernetes-patch-strategy': 'merge' }),
    daemonEndpoints: obj({ kubeletEndpoint: obj({ Port: int() }) }),
    nodeInfo: ref('io.k8s.api.core.v1.NodeSystemInfo'),
    images: arr(obj({ names: arr(str()), sizeBytes: int('int64') })),
    volumesInUse: arr(str()),
    volumesAttached: arr(obj({ name: str(), devicePath: str() })),
    config: free(),
    runtimeHandlers: arr(free()),
    features: free(),
  }),
  'io.k8s.api.core.v1.NodeCondition': obj({
    type: str(), status: str(), lastHeartbeatTime: time, lastTransitionTime: time, reason: str(), message: str(),
  }, { required: ['type', 'status'] }),
  'io.k8s.api.core.v1.NodeAddress': obj({ type: str(), address: str() }, { required: ['type', 'address'] }),
  'io.k8s.api.core.v1.NodeSystemInfo': obj({
    machineID: str(), systemUUID: str(), bootID: str(), kernelVersion: str(), osImage: str(), containerRuntimeVersion: str(),
    kubeletVersion: str(), kubeProxyVersion: str(), operatingSystem: str(), architecture: str(), swap: free(),
  }),
  'io.k8s.api.core.v1.NodeList': list('', 'NodeList', 'io.k8s.api.core.v1.Node'),

  // coordination.k8s.io/v1
  'io.k8s.api.coordination.v1.Lease': topLevel('coordination.k8s.io', 'Lease', { spec: ref('io.k8s.api.coordination.v1.LeaseSpec') }, 'A lease: a node heartbeat in kube-node-lease.'),
  'io.k8s.api.coordination.v1.LeaseSpec': obj({
    holderIdentity: str(), leaseDurationSeconds: int(), acquireTime: ref(`${META}.MicroTime`), renewTime: ref(`${META}.MicroTime`),
    leaseTransitions: int(), strategy: str(), preferredHolder: str(),
  }),
  'io.k8s.api.coordination.v1.LeaseList': list('coordination.k8s.io', 'LeaseList', 'io.k8s.api.coordination.v1.Lease'),

  // authentication.k8s.io/v1
  'io.k8s.api.authentication.v1.SelfSubjectReview': topLevel('authentication.k8s.io', 'SelfSubjectReview', {
    status: obj({ userInfo: ref('io.k8s.api.authentication.v1.UserInfo') }),
  }, 'Who the server takes the requester to be.'),
  'io.k8s.api.authentication.v1.UserInfo': obj({ username: str(), uid: str(), groups: arr(str()), extra: map(arr(str())) }),
};

export function resolve(s: Schema): Schema {
  let cur = s;
  for (let i = 0; cur.$ref && i < 10; i++) {
    const target = SCHEMAS[cur.$ref.replace('#/components/schemas/', '')];
    if (!target) break;
    cur = target;
  }
  return cur;
}

/** Every schema `name` refers to, itself included. */
export function closure(names: string[]): Record<string, Schema> {
  const out: Record<string, Schema> = {};
  const visit = (s: Schema | boolean | undefined) => {
    if (!s || typeof s !== 'object') return;
    if (s.$ref) add(s.$ref.replace('#/components/schemas/', ''));
    for (const p of Object.values(s.properties ?? {})) visit(p);
    visit(s.items);
    visit(s.additionalProperties);
    for (const a of s.allOf ?? []) visit(a);
  };
  const add = (n: string) => {
    if (out[n] || !SCHEMAS[n]) return;
    out[n] = SCHEMAS[n];
    visit(SCHEMAS[n]);
  };
  for (const n of names) add(n);
  return out;
}
