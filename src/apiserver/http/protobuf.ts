// Decoding the protobuf bodies kubectl 1.32 sends (CSR approval PUTs, SelfSubjectReviews): a varint reader and the few messages involved.
import { badRequestError } from '../status.js';
import { timestamp } from '../registry/meta.js';

export const PROTOBUF_MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]); // "k8s\0"

interface Field {
  num: number;
  wire: number;
  /** varint value (wire 0), as bigint to keep int64 exact. */
  varint?: bigint;
  /** length-delimited bytes (wire 2). */
  bytes?: Buffer;
}

/** Reads every field of one message; groups (wire 3/4) are refused, fixed-size fields skipped. */
export function readFields(buf: Buffer, what: string): Field[] {
  const out: Field[] = [];
  let pos = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (pos >= buf.length) throw badRequestError(`protobuf ${what}: truncated varint`);
      const b = buf[pos++];
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
    throw badRequestError(`protobuf ${what}: varint longer than 10 bytes`);
  };
  while (pos < buf.length) {
    const tag = varint();
    const num = Number(tag >> 3n);
    const wire = Number(tag & 7n);
    if (num === 0) throw badRequestError(`protobuf ${what}: field number 0`);
    switch (wire) {
      case 0:
        out.push({ num, wire, varint: varint() });
        break;
      case 1:
        if (pos + 8 > buf.length) throw badRequestError(`protobuf ${what}: truncated fixed64`);
        pos += 8;
        break;
      case 2: {
        const len = Number(varint());
        if (len < 0 || pos + len > buf.length) throw badRequestError(`protobuf ${what}: length ${len} runs past the end`);
        out.push({ num, wire, bytes: buf.subarray(pos, pos + len) });
        pos += len;
        break;
      }
      case 5:
        if (pos + 4 > buf.length) throw badRequestError(`protobuf ${what}: truncated fixed32`);
        pos += 4;
        break;
      default:
        throw badRequestError(`protobuf ${what}: unsupported wire type ${wire}`);
    }
  }
  return out;
}

/** How to turn a message's fields into JSON. */
type Kind = 'string' | 'bytes' | 'int' | 'bool' | 'time' | { message: MessageSpec } | { map: 'string' | { message: MessageSpec } };
interface FieldSpec {
  name: string;
  kind: Kind;
  repeated?: boolean;
}
type MessageSpec = Record<number, FieldSpec>;

/** Go's zero time.Time, in Unix seconds. */
const ZERO_TIME_SECONDS = -62135596800;

const TIME: MessageSpec = { 1: { name: 'seconds', kind: 'int' }, 2: { name: 'nanos', kind: 'int' } };

const OBJECT_META: MessageSpec = {
  1: { name: 'name', kind: 'string' },
  2: { name: 'generateName', kind: 'string' },
  3: { name: 'namespace', kind: 'string' },
  5: { name: 'uid', kind: 'string' },
  6: { name: 'resourceVersion', kind: 'string' },
  7: { name: 'generation', kind: 'int' },
  8: { name: 'creationTimestamp', kind: 'time' },
  11: { name: 'labels', kind: { map: 'string' } },
  12: { name: 'annotations', kind: { map: 'string' } },
  14: { name: 'finalizers', kind: 'string', repeated: true },
};

const EXTRA_VALUE: MessageSpec = { 1: { name: 'items', kind: 'string', repeated: true } };

const CSR_SPEC: MessageSpec = {
  1: { name: 'request', kind: 'bytes' },
  2: { name: 'username', kind: 'string' },
  3: { name: 'uid', kind: 'string' },
  4: { name: 'groups', kind: 'string', repeated: true },
  5: { name: 'usages', kind: 'string', repeated: true },
  6: { name: 'extra', kind: { map: { message: EXTRA_VALUE } } },
  7: { name: 'signerName', kind: 'string' },
  8: { name: 'expirationSeconds', kind: 'int' },
};

const CSR_CONDITION: MessageSpec = {
  1: { name: 'type', kind: 'string' },
  2: { name: 'reason', kind: 'string' },
  3: { name: 'message', kind: 'string' },
  4: { name: 'lastUpdateTime', kind: 'time' },
  5: { name: 'lastTransitionTime', kind: 'time' },
  6: { name: 'status', kind: 'string' },
};

const CSR_STATUS: MessageSpec = {
  1: { name: 'conditions', kind: { message: CSR_CONDITION }, repeated: true },
  2: { name: 'certificate', kind: 'bytes' },
};

const MESSAGES: Record<string, MessageSpec> = {
  'certificates.k8s.io/v1/CertificateSigningRequest': {
    1: { name: 'metadata', kind: { message: OBJECT_META } },
    2: { name: 'spec', kind: { message: CSR_SPEC } },
    3: { name: 'status', kind: { message: CSR_STATUS } },
  },
  'authentication.k8s.io/v1/SelfSubjectReview': { 1: { name: 'metadata', kind: { message: OBJECT_META } } },
  'authentication.k8s.io/v1beta1/SelfSubjectReview': { 1: { name: 'metadata', kind: { message: OBJECT_META } } },
};

function decodeMessage(buf: Buffer, spec: MessageSpec, what: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of readFields(buf, what)) {
    const fs = spec[f.num];
    if (!fs) continue; // fields nobody here reads
    const v = decodeValue(f, fs.kind, `${what}.${fs.name}`);
    if (v === undefined) continue;
    if (typeof fs.kind === 'object' && 'map' in fs.kind) {
      const [k, val] = v as [string, unknown];
      const m = (out[fs.name] ??= {}) as Record<string, unknown>;
      m[k] = val;
    } else if (fs.repeated) {
      ((out[fs.name] ??= []) as unknown[]).push(v);
    } else out[fs.name] = v;
  }
  return out;
}

function decodeValue(f: Field, kind: Kind, what: string): unknown {
  const need = (wire: number) => {
    if (f.wire !== wire) throw badRequestError(`protobuf ${what}: wire type ${f.wire}, expected ${wire}`);
  };
  if (kind === 'int') {
    need(0);
    return Number(BigInt.asIntN(64, f.varint!));
  }
  if (kind === 'bool') {
    need(0);
    return f.varint !== 0n;
  }
  need(2);
  const b = f.bytes!;
  if (kind === 'string') return b.toString('utf8');
  if (kind === 'bytes') return b.toString('base64');
  if (kind === 'time') {
    // metav1.Time marshals the zero time as an empty message: unset.
    const t = decodeMessage(b, TIME, what);
    const seconds = t.seconds as number | undefined;
    if (seconds === undefined || seconds === ZERO_TIME_SECONDS) return undefined;
    return timestamp(new Date(seconds * 1000));
  }
  if ('message' in kind) return decodeMessage(b, kind.message, what);
  // A map entry: key = 1, value = 2.
  let key = '';
  let value: unknown = kind.map === 'string' ? '' : {};
  for (const e of readFields(b, what)) {
    if (e.num === 1 && e.wire === 2) key = e.bytes!.toString('utf8');
    else if (e.num === 2) value = decodeValue(e, kind.map === 'string' ? 'string' : kind.map, what);
  }
  if (typeof kind.map === 'object' && value && typeof value === 'object' && 'items' in value) value = (value as { items: unknown }).items;
  return [key, value];
}

/**
 * A Kubernetes protobuf body ("k8s\0" + runtime.Unknown{typeMeta, raw}) → the object in JSON shape. Only the kinds in
 * MESSAGES are understood; fields that the API server does not read are left out.
 */
export function decodeKubeProtobuf(body: Buffer): Record<string, unknown> {
  if (body.length < 4 || !body.subarray(0, 4).equals(PROTOBUF_MAGIC)) throw badRequestError('protobuf body does not start with the "k8s\\0" prefix');
  let apiVersion = '';
  let kind = '';
  let raw: Buffer | undefined;
  for (const f of readFields(body.subarray(4), 'runtime.Unknown')) {
    if (f.num === 1 && f.wire === 2) {
      for (const t of readFields(f.bytes!, 'TypeMeta')) {
        if (t.num === 1 && t.wire === 2) apiVersion = t.bytes!.toString('utf8');
        if (t.num === 2 && t.wire === 2) kind = t.bytes!.toString('utf8');
      }
    } else if (f.num === 2 && f.wire === 2) raw = f.bytes!;
  }
  const gvk = `${apiVersion.includes('/') ? apiVersion : `core/${apiVersion}`}/${kind}`;
  const spec = MESSAGES[gvk];
  if (!spec) throw badRequestError(`protobuf bodies of kind ${kind} (${apiVersion || 'no apiVersion'}) are not understood here; send JSON`);
  return { apiVersion, kind, ...decodeMessage(raw ?? Buffer.alloc(0), spec, kind) };
}

/** Writers for tests: the inverse of readFields for the shapes above. */
export function encodeVarint(n: bigint | number): Buffer {
  let v = BigInt(n);
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) b |= 0x80;
    out.push(b);
  } while (v !== 0n);
  return Buffer.from(out);
}

export function encodeField(num: number, value: Buffer | string | number | bigint): Buffer {
  if (typeof value === 'number' || typeof value === 'bigint') return Buffer.concat([encodeVarint((num << 3) | 0), encodeVarint(value)]);
  const b = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  return Buffer.concat([encodeVarint((num << 3) | 2), encodeVarint(b.length), b]);
}
