// metadata.managedFields: who owns which fields after create, update, apply and removal; the default manager from a User-Agent.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fromFieldsV1, managedFieldsAfter, managerFromUserAgent, toFieldsV1, type FieldManager } from '../../src/apiserver/registry/managed-fields.js';
import type { KubeObject } from '../../src/apiserver/types.js';

const T = '2026-01-01T00:00:00Z';
const AV = 'certificates.k8s.io/v1';
const SERVER_SET = ['spec.username', 'spec.groups'];

function csr(o: { labels?: Record<string, string>; usages?: string[]; conditions?: unknown[]; managedFields?: unknown[] } = {}): KubeObject {
  return {
    apiVersion: AV,
    kind: 'CertificateSigningRequest',
    metadata: { name: 'x', uid: 'u', resourceVersion: '7', creationTimestamp: T, ...(o.labels ? { labels: o.labels } : {}), ...(o.managedFields ? { managedFields: o.managedFields } : {}) },
    spec: { request: 'UkVR', signerName: 'example.com/s', usages: o.usages ?? ['client auth'], username: 'admin', groups: ['system:masters'] },
    status: o.conditions ? { conditions: o.conditions } : {},
  };
}

const after = (before: KubeObject | undefined, next: KubeObject, who: FieldManager) => managedFieldsAfter(before, next, who, T, AV, SERVER_SET);
const summary = (entries: ReturnType<typeof after>) => entries.map((e) => [e.manager, e.operation, e.subresource ?? '', e.fieldsV1]);

describe('managed fields', () => {
  it('create: the creator owns what it set; identity metadata and server-set fields belong to nobody', () => {
    const e = after(undefined, csr({ labels: { a: '1' } }), { manager: 'kubectl-create', operation: 'Update' });
    assert.deepEqual(summary(e), [['kubectl-create', 'Update', '', { 'f:metadata': { 'f:labels': { 'f:a': {} } }, 'f:spec': { 'f:request': {}, 'f:signerName': {}, 'f:usages': {} } }]]);
    assert.deepEqual({ ...e[0], fieldsV1: null }, { manager: 'kubectl-create', operation: 'Update', apiVersion: AV, time: T, fieldsType: 'FieldsV1', fieldsV1: null });
  });

  it('update: the writer takes the fields it changed from whoever owned them; an entry left with nothing is dropped', () => {
    const created = csr({ labels: { a: '1' } });
    created.metadata.managedFields = after(undefined, created, { manager: 'creator', operation: 'Update' });
    const relabelled = csr({ labels: { a: '2' }, managedFields: created.metadata.managedFields });
    const e = after(created, relabelled, { manager: 'labeller', operation: 'Update' });
    assert.deepEqual(summary(e), [
      ['creator', 'Update', '', { 'f:spec': { 'f:request': {}, 'f:signerName': {}, 'f:usages': {} } }],
      ['labeller', 'Update', '', { 'f:metadata': { 'f:labels': { 'f:a': {} } } }],
    ]);
    // The labeller removes the label: it owned nothing else, so its entry goes.
    const unlabelled = csr({ managedFields: e });
    assert.deepEqual(summary(after(relabelled, unlabelled, { manager: 'labeller', operation: 'Update' })).map((s) => s[0]), ['creator']);
  });

  it('a subresource write is its own entry; a write that changes nothing changes no entry', () => {
    const created = csr();
    created.metadata.managedFields = after(undefined, created, { manager: 'kubectl', operation: 'Update' });
    const approved = csr({ conditions: [{ type: 'Approved', status: 'True' }], managedFields: created.metadata.managedFields });
    const e = after(created, approved, { manager: 'kubectl', operation: 'Update', subresource: 'approval' });
    assert.deepEqual(summary(e).map((s) => [s[0], s[2], s[3]]), [
      ['kubectl', '', { 'f:spec': { 'f:request': {}, 'f:signerName': {}, 'f:usages': {} } }],
      ['kubectl', 'approval', { 'f:status': { 'f:conditions': {} } }],
    ]);
    approved.metadata.managedFields = e;
    assert.deepEqual(after(approved, structuredClone(approved), { manager: 'other', operation: 'Update' }), e);
  });

  it('apply: the applier owns exactly what it applied, and takes it from others', () => {
    const created = csr({ labels: { a: '1' } });
    created.metadata.managedFields = after(undefined, created, { manager: 'creator', operation: 'Update' });
    const applied = { apiVersion: AV, kind: 'CertificateSigningRequest', metadata: { name: 'x', labels: { a: '1', b: '2' } } };
    const next = csr({ labels: { a: '1', b: '2' }, managedFields: created.metadata.managedFields });
    const e = after(created, next, { manager: 'applier', operation: 'Apply', applied });
    assert.deepEqual(summary(e), [
      ['creator', 'Update', '', { 'f:spec': { 'f:request': {}, 'f:signerName': {}, 'f:usages': {} } }],
      ['applier', 'Apply', '', { 'f:metadata': { 'f:labels': { 'f:a': {}, 'f:b': {} } } }],
    ]);
    // Applying less gives up the rest.
    const e2 = after(next, csr({ labels: { a: '1', b: '2' }, managedFields: e }), { manager: 'applier', operation: 'Apply', applied: { ...applied, metadata: { name: 'x', labels: { b: '2' } } } });
    assert.deepEqual(e2[1].fieldsV1, { 'f:metadata': { 'f:labels': { 'f:b': {} } } });
  });

  it('FieldsV1 round trip, including "." for a field owned itself as well as below', () => {
    const paths = [JSON.stringify(['spec', 'usages']), JSON.stringify(['metadata', 'labels', 'a/b.c'])];
    assert.deepEqual([...fromFieldsV1(toFieldsV1(paths))].sort(), [...paths].sort());
    assert.deepEqual([...fromFieldsV1({ 'f:spec': { '.': {}, 'f:x': {} } })].sort(), [JSON.stringify(['spec']), JSON.stringify(['spec', 'x'])].sort());
  });

  it('the default manager is the User-Agent up to its first "/", printable, at most 128 bytes', () => {
    const table: Array<[string | undefined, string]> = [
      ['kubectl/v1.32.0 (linux/amd64) kubernetes/70d3cc9', 'kubectl'],
      ['ruby-kubeclient/4.9.3', 'ruby-kubeclient'],
      ['Go-http-client/2.0', 'Go-http-client'],
      ['plain', 'plain'],
      ['a\u0000b\nc/1', 'abc'],
      [`${'m'.repeat(200)}/1`, 'm'.repeat(128)],
      ['', ''],
      [undefined, ''],
    ];
    for (const [ua, want] of table) assert.equal(managerFromUserAgent(ua), want, String(ua));
  });
});
