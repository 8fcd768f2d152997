// `node dist/fuzz/seeds.js [NAME...]`: writes the seed inputs of each target into fuzz/corpus/NAME (real CSRs from openssl,
// sample bodies, etcd requests as protobufjs encodes them). Run once to make a corpus; fuzzing and --merge grow it.
import type * as grpc from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeField } from '../src/apiserver/http/protobuf.js';
import { pemDecode } from '../src/pki/pem.js';
import { etcdPackageDefinition } from '../src/store/server/proto.js';
import { makeOpensslCa } from '../test/helpers/openssl-certs.js';
import { opensslCsr } from '../test/helpers/openssl.js';
import { tempDir } from '../test/helpers/tmp.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

function csrSeeds(): Buffer[] {
  const dir = tempDir('tp-fuzz-seeds-');
  try {
    const out: Buffer[] = [];
    const node = '/O=system:nodes/CN=system:node:demo-node-1';
    const kinds = [
      { key: 'p256', subj: node, addext: [] },
      { key: 'p384', subj: node, addext: ['subjectAltName=DNS:demo-node-1,IP:10.0.0.5,IP:fd00::5'] },
      { key: 'rsa2048', subj: '/CN=alice/O=dev/O=ops', addext: ['keyUsage=critical,digitalSignature,keyEncipherment', 'extendedKeyUsage=clientAuth'] },
      { key: 'ed25519', subj: node, addext: ['subjectAltName=DNS:demo-node-1.example,URI:spiffe://td/n1,email:a@b.c', 'basicConstraints=critical,CA:FALSE'] },
      { key: 'p256', subj: '/C=DE/ST=Berlin/L=Berlin/OU=unit/CN=ümlaut\\, comma', addext: ['subjectAltName=DNS:*.wild.example'] },
    ] as const;
    kinds.forEach((k, i) => {
      const pem = opensslCsr(dir.path, `c${i}`, { key: k.key, subj: k.subj, addext: [...k.addext] });
      out.push(pemDecode(pem, ['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST']));
      if (i < 2) out.push(Buffer.from(pem, 'latin1'));
    });
    return out;
  } finally {
    dir.remove();
  }
}

function certSeeds(): Buffer[] {
  const ca = makeOpensslCa('fuzz seed CA');
  try {
    const server = ca.issue('server', { cn: 'kube-apiserver', sans: ['DNS:kubernetes.default.svc', 'DNS:localhost', 'IP:127.0.0.1', 'IP:::1'], eku: ['serverAuth'] });
    const client = ca.issue('client', { cn: 'system:node:demo-node-1', o: 'system:nodes', eku: ['clientAuth'] });
    const der = (pem: string) => pemDecode(pem, 'CERTIFICATE');
    return [der(ca.cert), der(server.cert), der(client.cert), Buffer.from(server.cert, 'latin1'), Buffer.from(`${client.cert}${ca.cert}`, 'latin1')];
  } finally {
    rmSync(ca.dir, { recursive: true, force: true });
  }
}

const CSR_OBJECT = {
  apiVersion: 'certificates.k8s.io/v1',
  kind: 'CertificateSigningRequest',
  metadata: { name: 'node-csr-1', labels: { app: 'x' } },
  spec: { request: 'LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K', signerName: 'kubernetes.io/kube-apiserver-client-kubelet', usages: ['digital signature', 'client auth'], expirationSeconds: 3600 },
};
const NODE_OBJECT = {
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name: 'demo-node-1', labels: { 'kubernetes.io/hostname': 'demo-node-1' } },
  status: { addresses: [{ type: 'InternalIP', address: '10.0.0.5' }], conditions: [{ type: 'Ready', status: 'True' }] },
};
const LEASE_OBJECT = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'demo-node-1', namespace: 'kube-node-lease' }, spec: { holderIdentity: 'demo-node-1', leaseDurationSeconds: 40, renewTime: '2026-01-01T00:00:00.000000Z' } };

const tagged = (selector: string, body: string | Buffer) => Buffer.concat([Buffer.from(selector, 'latin1'), Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8')]);

function kubeProtobuf(apiVersion: string, kind: string, raw: Buffer): Buffer {
  const typeMeta = Buffer.concat([encodeField(1, apiVersion), encodeField(2, kind)]);
  return Buffer.concat([Buffer.from('k8s\0', 'latin1'), encodeField(1, typeMeta), encodeField(2, raw)]);
}

function bodySeeds(): Buffer[] {
  const meta = Buffer.concat([encodeField(1, 'node-csr-1'), encodeField(6, '42'), encodeField(8, Buffer.concat([encodeField(1, 1767225600)])), encodeField(11, Buffer.concat([encodeField(1, 'app'), encodeField(2, 'x')]))]);
  const spec = Buffer.concat([encodeField(1, Buffer.from('csr der')), encodeField(2, 'system:bootstrap:abcdef'), encodeField(4, 'system:bootstrappers'), encodeField(5, 'client auth'), encodeField(6, Buffer.concat([encodeField(1, 'k'), encodeField(2, encodeField(1, 'v'))])), encodeField(7, 'kubernetes.io/kube-apiserver-client-kubelet'), encodeField(8, 3600)]);
  const condition = Buffer.concat([encodeField(1, 'Approved'), encodeField(2, 'KubectlApprove'), encodeField(3, 'approved by kubectl'), encodeField(4, encodeField(1, 1767225600)), encodeField(6, 'True')]);
  const status = Buffer.concat([encodeField(1, condition)]);
  const csrRaw = Buffer.concat([encodeField(1, meta), encodeField(2, spec), encodeField(3, status)]);
  return [
    tagged('0', JSON.stringify(CSR_OBJECT)),
    tagged('0', JSON.stringify(NODE_OBJECT)),
    tagged('0', JSON.stringify(LEASE_OBJECT)),
    tagged('0', '{"kind":"Node","apiVersion":"v1","metadata":{"name":"n","unknownField":1},"spec":{"taints":"wrong type"}}'),
    tagged('1', JSON.stringify(NODE_OBJECT, null, 2)),
    tagged('2', JSON.stringify(CSR_OBJECT)),
    tagged('3', kubeProtobuf('certificates.k8s.io/v1', 'CertificateSigningRequest', csrRaw)),
    tagged('3', kubeProtobuf('authentication.k8s.io/v1', 'SelfSubjectReview', encodeField(1, meta))),
    tagged('4', '{"kind":"SelfSubjectReview","apiVersion":"authentication.k8s.io/v1","metadata":{"creationTimestamp":null},"status":{}}'),
    tagged('5', 'kind: Node'),
  ];
}

function patchSeeds(): Buffer[] {
  // Selector: byte % 4 is the patch type, (byte >> 2) % 2 the object: '0'-'3' patch a CSR, '4'-'7' a Node.
  return [
    tagged('0', '[{"op":"add","path":"/metadata/labels/new","value":"v"},{"op":"replace","path":"/spec/usages/0","value":"server auth"},{"op":"test","path":"/metadata/name","value":"csr-1"}]'),
    tagged('0', '[{"op":"remove","path":"/status/conditions/0"},{"op":"copy","from":"/metadata/labels","path":"/metadata/annotations"},{"op":"move","from":"/spec/extra","path":"/spec/extra2"}]'),
    tagged('4', '[{"op":"add","path":"/status/addresses/-","value":{"type":"ExternalIP","address":"192.0.2.1"}},{"op":"replace","path":"/metadata/labels/kubernetes.io~1hostname","value":"x"}]'),
    tagged('1', '{"metadata":{"labels":{"a":null,"b":"c"}},"status":{"conditions":[{"type":"Denied","status":"True"}]}}'),
    tagged('5', '{"spec":{"unschedulable":true,"taints":null},"metadata":{"annotations":{"note":null}}}'),
    tagged('6', '{"status":{"addresses":[{"type":"InternalIP","address":"10.0.0.9"},{"type":"Hostname","$patch":"delete"}],"$setElementOrder/addresses":[{"type":"InternalIP"}]}}'),
    tagged('6', '{"metadata":{"$patch":"replace","name":"demo-node-1"},"spec":{"$retainKeys":["podCIDR"],"podCIDR":"10.0.1.0/24"},"$deleteFromPrimitiveList/finalizers":["x"]}'),
    tagged('2', '{"status":{"conditions":[{"type":"Approved","status":"True","reason":"R"}]},"metadata":{"$patch":"merge","finalizers":["y"]}}'),
    tagged('3', JSON.stringify({ apiVersion: 'certificates.k8s.io/v1', kind: 'CertificateSigningRequest', metadata: { name: 'csr-1', labels: { applied: 'yes' } } })),
    tagged('7', JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'demo-node-1' }, spec: { taints: [{ key: 'k', effect: 'NoExecute' }] } })),
  ];
}

function selectorSeeds(): Buffer[] {
  return [
    'app=x',
    'a=b,c!=d,e,!f',
    'env in (prod, staging),tier notin (frontend)',
    'kubernetes.io/hostname==demo-node-1',
    'x.example/y',
    '\0metadata.name=demo-node-1',
    'pool=default\0metadata.name!=n2,spec.signerName=kubernetes.io/kubelet-serving',
    '!a,b in (),c=\0spec.unschedulable==',
  ].map((s) => Buffer.from(s, 'utf8'));
}

function etcdSeeds(): Buffer[] {
  const pkg = etcdPackageDefinition();
  const enc = (service: string, method: string, msg: unknown) => ((pkg[`etcdserverpb.${service}`] as grpc.ServiceDefinition)[method] as grpc.MethodDefinition<unknown, unknown>).requestSerialize(msg);
  // Selector bytes follow METHODS in targets/etcd-request.fuzz.ts: '0' Range ... '9' LeaseTimeToLive, ':' Alarm, ';' Status.
  const key = Buffer.from('/registry/nodes/demo-node-1');
  const put = { key, value: Buffer.from('{"kind":"Node"}'), lease: '7587883116547313923', prev_kv: true };
  return [
    tagged('0', enc('KV', 'Range', { key, range_end: Buffer.from('/registry/nodes0'), limit: 500, revision: 12, sort_order: 'DESCEND', sort_target: 'MOD', keys_only: true, min_mod_revision: 3 })),
    tagged('0', enc('KV', 'Range', { key: Buffer.from([0]), range_end: Buffer.from([0]), count_only: true, serializable: true })),
    tagged('1', enc('KV', 'Put', put)),
    tagged('1', enc('KV', 'Put', { key, ignore_value: true, ignore_lease: true })),
    tagged('2', enc('KV', 'DeleteRange', { key, range_end: Buffer.from('/registry/nodes/demo-node-2'), prev_kv: true })),
    tagged(
      '3',
      enc('KV', 'Txn', {
        compare: [{ result: 'EQUAL', target: 'MOD', key, mod_revision: 5 }, { result: 'GREATER', target: 'VALUE', key, value: Buffer.from('a') }, { result: 'LESS', target: 'LEASE', key, lease: 1 }],
        success: [{ request_put: put }, { request_delete_range: { key: Buffer.from('/other') } }, { request_txn: { success: [{ request_range: { key } }], failure: [{ request_put: { key: Buffer.from('/x'), value: Buffer.from('y') } }] } }],
        failure: [{ request_range: { key, range_end: Buffer.from([0]) } }],
      }),
    ),
    tagged('4', enc('KV', 'Compact', { revision: 100, physical: true })),
    tagged('5', enc('Watch', 'Watch', { create_request: { key, range_end: Buffer.from([0]), start_revision: 3, progress_notify: true, filters: ['NOPUT', 'NODELETE'], prev_kv: true, watch_id: 9, fragment: true } })),
    tagged('5', enc('Watch', 'Watch', { cancel_request: { watch_id: 9 } })),
    tagged('5', enc('Watch', 'Watch', { progress_request: {} })),
    tagged('6', enc('Lease', 'LeaseGrant', { TTL: 40, ID: '7587883116547313923' })),
    tagged('7', enc('Lease', 'LeaseRevoke', { ID: '-1' })),
    tagged('8', enc('Lease', 'LeaseKeepAlive', { ID: '42' })),
    tagged('9', enc('Lease', 'LeaseTimeToLive', { ID: '42', keys: true })),
    tagged(':', enc('Maintenance', 'Alarm', { action: 'ACTIVATE', memberID: '18446744073709551615', alarm: 'NOSPACE' })),
    tagged(';', enc('Maintenance', 'Status', {})),
  ];
}

function storeReadSeeds(): Buffer[] {
  const pkg = etcdPackageDefinition();
  const enc = (method: string, msg: unknown) => ((pkg['etcdserverpb.KV'] as grpc.ServiceDefinition)[method] as grpc.MethodDefinition<unknown, unknown>).requestSerialize(msg);
  // Selector: even '0' Range, odd '1' Txn, as in targets/etcd-read.fuzz.ts; keys as that target's store holds them.
  const prefix = Buffer.from('/registry/nodes/');
  const end = Buffer.from('/registry/nodes0');
  return [
    tagged('0', enc('Range', { key: prefix, range_end: end })),
    tagged('0', enc('Range', { key: prefix, range_end: end, limit: 3 })),
    tagged('0', enc('Range', { key: prefix, range_end: end, revision: 8, limit: 2 })),
    tagged('0', enc('Range', { key: Buffer.from('/registry/nodes/n1') })),
    tagged('0', enc('Range', { key: Buffer.from([0]), range_end: Buffer.from([0]), sort_order: 'DESCEND', sort_target: 'VALUE' })),
    tagged('0', enc('Range', { key: prefix, range_end: end, keys_only: true, min_mod_revision: 10, max_create_revision: 12 })),
    tagged('0', enc('Range', { key: Buffer.from('a'), range_end: Buffer.from([0]), count_only: true, revision: 4 })),
    tagged(
      '1',
      enc('Txn', {
        compare: [{ result: 'EQUAL', target: 'VERSION', key: Buffer.from('/registry/nodes/n1'), version: 2 }, { result: 'NOT_EQUAL', target: 'LEASE', key: Buffer.from('/registry/leases/n1'), lease: 0 }],
        success: [{ request_range: { key: prefix, range_end: end, limit: 2 } }, { request_txn: { compare: [{ result: 'LESS', target: 'CREATE', key: Buffer.from('a'), create_revision: 99 }], success: [{ request_range: { key: Buffer.from('a') } }] } }],
        failure: [{ request_range: { key: Buffer.from('\u00ff\u00ff') } }],
      }),
    ),
  ];
}

const SEEDS: Record<string, () => Buffer[]> = {
  'csr-der': csrSeeds,
  'cert-der': certSeeds,
  'api-body': bodySeeds,
  'api-patch': patchSeeds,
  'api-selectors': selectorSeeds,
  'etcd-request': etcdSeeds,
  'etcd-read': storeReadSeeds,
};

function main(): void {
  const wanted = process.argv.slice(2);
  for (const [name, make] of Object.entries(SEEDS)) {
    if (wanted.length && !wanted.includes(name)) continue;
    const dir = join(root, 'fuzz', 'corpus', name);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const seeds = make();
    // Named by content, as libFuzzer names what it adds, so a seed and a found input never collide.
    for (const s of seeds) writeFileSync(join(dir, `seed-${createHash('sha1').update(s).digest('hex')}`), s);
    process.stdout.write(`${name}: ${seeds.length} seeds in ${dir}\n`);
  }
}

main();
