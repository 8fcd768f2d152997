// Fuzz target: PATCH bodies of the three patch types (JSON patch, merge patch, strategic merge patch) and server-side
// apply, decoded and applied to a stored object, then judged against its schema, as the router does.
//
// Input: one selector byte, then the body. byte % 4 picks the patch type ('0' JSON patch, '1' merge, '2' strategic,
// '3' apply YAML); (byte >> 2) % 2 the object (even: a CSR, odd: a Node). Seeds start with '0'..'7'.
//
// F1 (fuzz/README.md): a JSON patch of ~30 "copy" operations doubling the document held the event loop for minutes;
// its reproducers are in the corpus, and kube-apiserver's copy-size bound in patch.ts refuses them.
import { validateFields } from '../../src/apiserver/api/fields.js';
import { jsonPatch, mergePatch, strategicMergePatch } from '../../src/apiserver/api/patch.js';
import { SCHEMAS } from '../../src/apiserver/api/schemas.js';
import { decodeObject, parseJson } from '../../src/apiserver/http/body.js';
import { badRequestError } from '../../src/apiserver/status.js';
import { isClientRefusal, refusalsOnly } from '../refusals.js';

const CSR = {
  apiVersion: 'certificates.k8s.io/v1',
  kind: 'CertificateSigningRequest',
  metadata: { name: 'csr-1', uid: '3b0f3f8e-0d2c-4f61-9a57-0c5c0f2b9e11', resourceVersion: '42', creationTimestamp: '2026-01-01T00:00:00Z', labels: { a: 'b' }, finalizers: ['x'] },
  spec: {
    request: 'LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K',
    signerName: 'kubernetes.io/kube-apiserver-client-kubelet',
    usages: ['digital signature', 'client auth'],
    username: 'system:bootstrap:abcdef',
    groups: ['system:bootstrappers', 'system:authenticated'],
    extra: { k: ['v'] },
    expirationSeconds: 86400,
  },
  status: { conditions: [{ type: 'Approved', status: 'True', reason: 'AutoApproved', message: 'ok', lastUpdateTime: '2026-01-01T00:00:00Z' }], certificate: 'LS0t' },
};

const NODE = {
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name: 'demo-node-1', resourceVersion: '7', labels: { 'kubernetes.io/hostname': 'demo-node-1' }, annotations: { note: 'x' } },
  spec: { podCIDR: '10.0.0.0/24', taints: [{ key: 'k', value: 'v', effect: 'NoSchedule' }] },
  status: {
    addresses: [{ type: 'InternalIP', address: '10.0.0.5' }, { type: 'Hostname', address: 'demo-node-1' }],
    conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', lastHeartbeatTime: '2026-01-01T00:00:00Z' }],
    nodeInfo: { kubeletVersion: 'v1.33.0' },
    capacity: { cpu: '2', memory: '4Gi' },
  },
};

const TARGETS: Array<{ obj: object; schema: string; kind: string }> = [
  { obj: CSR, schema: 'io.k8s.api.certificates.v1.CertificateSigningRequest', kind: 'CertificateSigningRequest' },
  { obj: NODE, schema: 'io.k8s.api.core.v1.Node', kind: 'Node' },
];

function apply(kind: number, current: unknown, raw: Buffer, schemaName: string): unknown {
  switch (kind) {
    case 0:
      return jsonPatch(current, parseJson(raw));
    case 1:
      return mergePatch(current, parseJson(raw));
    case 2:
      return strategicMergePatch(current, parseJson(raw), SCHEMAS[schemaName]);
    default:
      return strategicMergePatch(current, decodeObject(raw, 'application/apply-patch+yaml'), SCHEMAS[schemaName]);
  }
}

export function fuzz(data: Buffer): void {
  if (data.length === 0) return;
  const t = TARGETS[(data[0] >> 2) % TARGETS.length];
  const current = structuredClone(t.obj);
  refusalsOnly(() => {
    const next = apply(data[0] % 4, current, data.subarray(1), t.schema);
    if (typeof next !== 'object' || next === null || Array.isArray(next)) throw badRequestError('the patch does not leave an object');
    validateFields(next as Record<string, unknown>, t.schema, t.kind, 'Warn');
    // The patched object is stored and sent back as JSON: it must serialize.
    JSON.stringify(next);
  }, isClientRefusal);
}

