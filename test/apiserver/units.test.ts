// The API server's pure parts: protobuf bodies, patches, the authorizer's decisions, table cells, selectors, field validation.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateFields } from '../../src/apiserver/api/fields.js';
import { jsonPatch, mergePatch, strategicMergePatch } from '../../src/apiserver/api/patch.js';
import { SCHEMAS } from '../../src/apiserver/api/schemas.js';
import { CSR_PRINTER, humanDuration, NODE_PRINTER } from '../../src/apiserver/api/tables.js';
import { wantsAggregated } from '../../src/apiserver/api/discovery.js';
import { authorize, csrCreateRefusal } from '../../src/apiserver/auth/authorize.js';
import { decodeKubeProtobuf, encodeField, PROTOBUF_MAGIC } from '../../src/apiserver/http/protobuf.js';
import { parseFieldSelector, parseLabelSelector } from '../../src/apiserver/http/selectors.js';
import type { CertificateSigningRequest } from '../../src/apiserver/registry/csr.js';
import type { Node } from '../../src/apiserver/registry/node.js';
import type { UserInfo } from '../../src/apiserver/types.js';
import type { ParsedCsr } from '../../src/pki/index.js';

const f = encodeField;
const cat = (...b: Buffer[]) => Buffer.concat(b);

describe('protobuf bodies', () => {
  it('decodes an approval PUT as kubectl 1.32 sends it', () => {
    const meta = cat(f(1, 'csr-a'), f(5, 'uid-1'), f(6, '42'), f(8, f(1, 1700000000)), f(11, cat(f(1, 'k'), f(2, 'v'))));
    const cond = cat(f(1, 'Approved'), f(2, 'KubectlApprove'), f(3, 'approved by kubectl'), f(4, f(1, 1700000100)), f(5, Buffer.alloc(0)), f(6, 'True'));
    const spec = cat(f(1, Buffer.from('PEM')), f(7, 'kubernetes.io/kube-apiserver-client-kubelet'), f(5, 'client auth'), f(5, 'digital signature'), f(8, 3600), f(6, cat(f(1, 'x'), f(2, f(1, 'y')))));
    const csr = cat(f(1, meta), f(2, spec), f(3, f(1, cond)));
    const body = cat(PROTOBUF_MAGIC, f(1, cat(f(1, 'certificates.k8s.io/v1'), f(2, 'CertificateSigningRequest'))), f(2, csr), f(3, ''), f(4, ''));
    assert.deepEqual(decodeKubeProtobuf(body), {
      apiVersion: 'certificates.k8s.io/v1',
      kind: 'CertificateSigningRequest',
      metadata: { name: 'csr-a', uid: 'uid-1', resourceVersion: '42', creationTimestamp: '2023-11-14T22:13:20Z', labels: { k: 'v' } },
      spec: {
        request: Buffer.from('PEM').toString('base64'),
        signerName: 'kubernetes.io/kube-apiserver-client-kubelet',
        usages: ['client auth', 'digital signature'],
        expirationSeconds: 3600,
        extra: { x: ['y'] },
      },
      status: { conditions: [{ type: 'Approved', reason: 'KubectlApprove', message: 'approved by kubectl', lastUpdateTime: '2023-11-14T22:15:00Z', status: 'True' }] },
    });
  });

  it('refuses other kinds, a missing prefix and truncated input', () => {
    assert.throws(() => decodeKubeProtobuf(Buffer.from('{"kind":"x"}')), /k8s\\0/);
    assert.throws(() => decodeKubeProtobuf(cat(PROTOBUF_MAGIC, f(1, cat(f(1, 'v1'), f(2, 'Secret'))))), /Secret .* not understood/);
    assert.throws(() => decodeKubeProtobuf(cat(PROTOBUF_MAGIC, Buffer.from([0x0a, 0x05, 0x01]))), /runs past the end/);
    assert.throws(() => decodeKubeProtobuf(cat(PROTOBUF_MAGIC, Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]))), /varint/);
  });
});

describe('patches', () => {
  it('merge patch: null deletes, objects merge, lists replace', () => {
    assert.deepEqual(mergePatch({ a: 1, b: { c: 2, d: 3 }, l: [1, 2] }, { a: null, b: { c: 5 }, l: [3] }), { b: { c: 5, d: 3 }, l: [3] });
  });

  it('strategic merge patch: merge keys from the schema, directives', () => {
    const node = { metadata: { name: 'n', labels: { a: '1' } }, status: { conditions: [{ type: 'Ready', status: 'False' }, { type: 'DiskPressure', status: 'False' }] } };
    const patch = {
      metadata: { labels: { b: '2' } },
      status: { conditions: [{ type: 'Ready', status: 'True' }, { type: 'DiskPressure', $patch: 'delete' }, { type: 'PIDPressure', status: 'False' }] },
      '$setElementOrder/conditions': [],
    };
    const out = strategicMergePatch(node, patch, SCHEMAS['io.k8s.api.core.v1.Node']) as unknown as Node;
    assert.deepEqual(out.metadata.labels, { a: '1', b: '2' });
    assert.deepEqual(out.status!.conditions, [{ type: 'Ready', status: 'True' }, { type: 'PIDPressure', status: 'False' }]);
    assert.deepEqual(strategicMergePatch({ spec: { a: 1, b: 2 } }, { spec: { $patch: 'replace', c: 3 } }, undefined), { spec: { c: 3 } });
    assert.throws(() => strategicMergePatch({}, { $bogus: 1 }, undefined), /unknown directive/);
  });

  it('json patch: add, replace, remove, test', () => {
    const out = jsonPatch({ metadata: { labels: { a: '1' } }, l: [1, 2] }, [
      { op: 'add', path: '/metadata/labels/b~1c', value: '2' },
      { op: 'replace', path: '/l/0', value: 9 },
      { op: 'add', path: '/l/-', value: 3 },
      { op: 'remove', path: '/metadata/labels/a' },
      { op: 'test', path: '/l/0', value: 9 },
    ]);
    assert.deepEqual(out, { metadata: { labels: { 'b/c': '2' } }, l: [9, 2, 3] });
    assert.throws(() => jsonPatch({}, [{ op: 'remove', path: '/nope' }]), /does not exist/);
    assert.throws(() => jsonPatch({ a: 1 }, [{ op: 'test', path: '/a', value: 2 }]), /test of "\/a" failed/);
  });
});

describe('field validation', () => {
  it('prunes unknown fields; Strict names them; wrong types are always refused', () => {
    const obj = { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n', labels: { any: 'thing' }, extra: 1 }, status: { capacity: { cpu: 4, memory: '1Gi' }, foo: {} } };
    assert.deepEqual(validateFields(structuredClone(obj), 'io.k8s.api.core.v1.Node', 'Node', 'Warn'), ['unknown field "metadata.extra"', 'unknown field "status.foo"']);
    assert.throws(() => validateFields(structuredClone(obj), 'io.k8s.api.core.v1.Node', 'Node', 'Strict'), /strict decoding error: unknown field "metadata.extra", unknown field "status.foo"/);
    const pruned = structuredClone(obj);
    assert.deepEqual(validateFields(pruned, 'io.k8s.api.core.v1.Node', 'Node', 'Ignore'), []);
    assert.deepEqual(pruned.status, { capacity: { cpu: 4, memory: '1Gi' } });
    assert.throws(() => validateFields({ metadata: { name: 5 } }, 'io.k8s.api.core.v1.Node', 'Node', 'Ignore'), /metadata.name: expected string, got integer/);
  });
});

describe('authorizer', () => {
  const admin: UserInfo = { name: 'root', groups: ['system:masters'] };
  const node: UserInfo = { name: 'system:node:n1', groups: ['system:nodes', 'system:authenticated'] };
  const fakeNode: UserInfo = { name: 'system:node:n1', groups: ['system:authenticated'] };
  const boot: UserInfo = { name: 'system:bootstrap:abcdef', groups: ['system:bootstrappers', 'system:bootstrappers:p'] };
  const other: UserInfo = { name: 'alice', groups: ['devs'] };
  const csrs = { group: 'certificates.k8s.io', resource: 'certificatesigningrequests' };
  const nodes = { group: '', resource: 'nodes' };
  const leases = { group: 'coordination.k8s.io', resource: 'leases', namespace: 'kube-node-lease' };

  it('decides the matrix', () => {
    const cases: Array<[UserInfo, Record<string, unknown>, boolean]> = [
      [admin, { verb: 'delete', ...csrs, name: 'x' }, true],
      [admin, { verb: 'update', ...csrs, subresource: 'approval', name: 'x' }, true],
      [boot, { verb: 'create', ...csrs }, true],
      [boot, { verb: 'get', ...csrs, name: 'x' }, true],
      [boot, { verb: 'delete', ...csrs, name: 'x' }, false],
      [boot, { verb: 'update', ...csrs, subresource: 'approval', name: 'x' }, false],
      [boot, { verb: 'get', ...nodes, name: 'n1' }, false],
      [node, { verb: 'create', ...csrs }, true],
      [node, { verb: 'update', ...csrs, subresource: 'status', name: 'x' }, false],
      [node, { verb: 'get', ...nodes, name: 'n1' }, true],
      [node, { verb: 'update', ...nodes, subresource: 'status', name: 'n1' }, true],
      [node, { verb: 'get', ...nodes, name: 'n2' }, false],
      [node, { verb: 'delete', ...nodes, name: 'n1' }, false],
      [node, { verb: 'update', ...leases, name: 'n1' }, true],
      [node, { verb: 'update', ...leases, name: 'n2' }, false],
      [node, { verb: 'get', ...leases, namespace: 'default', name: 'n1' }, false],
      [fakeNode, { verb: 'get', ...nodes, name: 'n1' }, false],
      [other, { verb: 'list', ...csrs }, false],
      [other, { verb: 'create', group: 'authentication.k8s.io', resource: 'selfsubjectreviews' }, true],
    ];
    for (const [u, a, want] of cases) assert.equal(authorize(u, a as never).allowed, want, `${u.name} ${JSON.stringify(a)}`);
    const list = authorize(boot, { verb: 'list', ...csrs });
    assert.ok(list.allowed && list.filter);
    assert.equal(list.filter({ apiVersion: '', kind: '', metadata: { name: 'a' }, spec: { username: boot.name } }), true);
    assert.equal(list.filter({ apiVersion: '', kind: '', metadata: { name: 'b' }, spec: { username: 'someone' } }), false);
  });

  it('admits CSR subjects: a node only for itself, a token only kubelet clients', () => {
    const req = (cn: string, o = 'system:nodes') => ({ subject: [{ type: 'CN', value: cn }, { type: 'O', value: o }] }) as unknown as ParsedCsr;
    const csr = (signerName: string) => ({ spec: { signerName } }) as CertificateSigningRequest;
    const client = csr('kubernetes.io/kube-apiserver-client-kubelet');
    const serving = csr('kubernetes.io/kubelet-serving');
    assert.equal(csrCreateRefusal(node, client, req('system:node:n1')), undefined);
    assert.equal(csrCreateRefusal(node, serving, req('system:node:n1')), undefined);
    assert.match(csrCreateRefusal(node, client, req('system:node:n2'))!, /may only request certificates for/);
    assert.match(csrCreateRefusal(node, client, req('system:node:n1', 'system:masters'))!, /may only request/);
    assert.match(csrCreateRefusal(boot, serving, req('system:node:n1'))!, /only request certificates from signer/);
    assert.equal(csrCreateRefusal(boot, client, req('system:node:n7')), undefined);
    assert.match(csrCreateRefusal({ ...boot, extra: { 'trustplane.io/bound-node-name': ['n3'] } }, client, req('system:node:n7'))!, /bound to node "n3"/);
    assert.match(csrCreateRefusal(other, client, req('system:node:n1'))!, /only administrators/);
    assert.equal(csrCreateRefusal(admin, csr('example.com/x'), req('anything', 'any')), undefined);
  });
});

describe('tables, selectors, discovery negotiation', () => {
  it('human durations as Kubernetes prints them', () => {
    const s = 1000;
    assert.deepEqual([5 * s, 119 * s, 200 * s, 600 * s, 3 * 3600 * s + 5 * 60 * s, 24 * 3600 * s, 3 * 86400 * s + 3600 * s, 400 * 86400 * s, 3 * 365 * 86400 * s].map(humanDuration), [
      '5s', '119s', '3m20s', '10m', '3h5m', '24h', '3d1h', '400d', '3y',
    ]);
  });

  it('CSR and Node cells', () => {
    const now = new Date('2025-01-01T01:00:00Z');
    const csr = {
      apiVersion: 'certificates.k8s.io/v1', kind: 'CertificateSigningRequest',
      metadata: { name: 'c', creationTimestamp: '2025-01-01T00:00:00Z' },
      spec: { request: '', signerName: 's/x', username: 'u', expirationSeconds: 3600 },
      status: { conditions: [{ type: 'Approved', status: 'True' }], certificate: 'x' },
    } as CertificateSigningRequest;
    assert.deepEqual(CSR_PRINTER.cells(csr, now), ['c', '60m', 's/x', 'u', '60m', 'Approved,Issued']);
    const node = { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n', labels: { 'node-role.kubernetes.io/control-plane': '', 'kubernetes.io/role': 'edge' } }, spec: { unschedulable: true } } as Node;
    assert.deepEqual(NODE_PRINTER.cells(node, now).slice(0, 3), ['n', 'Unknown,SchedulingDisabled', 'control-plane,edge']);
  });

  it('label and field selectors', () => {
    const m = parseLabelSelector('a=1,b!=2,c,!d,e in (x, y),f notin (z)');
    assert.equal(m({ a: '1', c: '', e: 'y' }), true);
    assert.equal(m({ a: '1', c: '', e: 'y', d: '' }), false);
    assert.equal(m({ a: '1', b: '2', c: '', e: 'x' }), false);
    assert.throws(() => parseLabelSelector('a=(1'), /unable to parse/);
    const fs = parseFieldSelector('metadata.name=x', (o, fl) => (fl === 'metadata.name' ? o.metadata.name : undefined), ['metadata.name']);
    assert.equal(fs({ apiVersion: '', kind: '', metadata: { name: 'x' } }), true);
    assert.throws(() => parseFieldSelector('spec.nodeName=x', () => undefined, ['metadata.name']), /field label not supported: spec.nodeName/);
  });

  it('aggregated discovery only for the v2 media type', () => {
    assert.equal(wantsAggregated('application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json'), true);
    assert.equal(wantsAggregated('application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json'), false);
    assert.equal(wantsAggregated('application/json'), false);
  });
});
