// Hand-written protobuf encoding of the hot responses (Range, Put, Watch), bypassing protobufjs's per-field object walk.
//
// Output is canonical proto3, as Go's encoder writes it: fields in number order, default values left out. Anything not
// handled here still goes through @grpc/proto-loader's serializer: a handler returns an `Encoded` to skip it.
import type * as grpc from '@grpc/grpc-js';
import type { KeyValue, ResponseHeader } from './types.js';

/** A response already in wire form; the service's serializer passes its bytes through. */
export class Encoded {
  constructor(readonly bytes: Buffer) {}
}

/** A copy of `def` whose response serializers pass `Encoded` responses through untouched. */
export function withEncodedResponses(def: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(def)) {
    const encode = method.responseSerialize;
    out[name] = { ...method, responseSerialize: (v: unknown) => (v instanceof Encoded ? v.bytes : encode(v)) };
  }
  return out;
}

// ---- primitives --------------------------------------------------------------------------------------------------

const TWO_64 = 1n << 64n;

/** Bytes of a varint holding `v`, a non-negative safe integer. */
export function varintSize(v: number): number {
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

/** Writes the non-negative safe integer `v` as a varint at `at`; returns the offset after it. */
export function writeVarint(buf: Buffer, at: number, v: number): number {
  while (v >= 128) {
    buf[at++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[at++] = v;
  return at;
}

/** The varint of an int64/uint64 given as a decimal string or number (negative int64 as its two's complement). */
export function bigVarint(v: string | number | bigint): Buffer {
  let x = BigInt(v);
  if (x < 0n) x += TWO_64;
  if (x <= BigInt(Number.MAX_SAFE_INTEGER)) {
    const n = Number(x);
    const b = Buffer.allocUnsafe(varintSize(n));
    writeVarint(b, 0, n);
    return b;
  }
  const bytes: number[] = [];
  while (x >= 128n) {
    bytes.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  bytes.push(Number(x));
  return Buffer.from(bytes);
}

/** Builds one message from parts; each part is a tag byte and a payload. */
class Writer {
  private readonly parts: Buffer[] = [];
  private size = 0;

  /** A varint field; 0 is left out. `v` is a non-negative safe integer. */
  uint(tag: number, v: number): this {
    if (v === 0) return this;
    const b = Buffer.allocUnsafe(1 + varintSize(v));
    b[0] = tag;
    writeVarint(b, 1, v);
    return this.raw(b);
  }

  /** An int64/uint64 field from a decimal string, number or bigint; 0 is left out. */
  big(tag: number, v: string | number | bigint): this {
    if (v === 0 || v === '0' || v === 0n) return this;
    return this.raw(Buffer.of(tag)).raw(bigVarint(v));
  }

  bool(tag: number, v: boolean | undefined): this {
    return v ? this.raw(Buffer.of(tag, 1)) : this;
  }

  /** A length-delimited field (bytes, string or sub-message); empty is left out unless `keepEmpty`. */
  bytes(tag: number, v: Buffer, keepEmpty = false): this {
    if (v.length === 0 && !keepEmpty) return this;
    const h = Buffer.allocUnsafe(1 + varintSize(v.length));
    h[0] = tag;
    writeVarint(h, 1, v.length);
    return this.raw(h).raw(v);
  }

  raw(b: Buffer): this {
    this.parts.push(b);
    this.size += b.length;
    return this;
  }

  finish(): Buffer {
    return this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.size);
  }
}

// ---- messages ----------------------------------------------------------------------------------------------------

let lastHeader: { h: ResponseHeader; bytes: Buffer } | undefined;

/** etcdserverpb.ResponseHeader, as the body of a message (no tag). The last one is kept: most responses repeat it. */
export function encodeHeader(h: ResponseHeader): Buffer {
  const c = lastHeader;
  if (c && c.h.revision === h.revision && c.h.raft_term === h.raft_term && c.h.cluster_id === h.cluster_id && c.h.member_id === h.member_id) return c.bytes;
  const bytes = new Writer().big(0x08, h.cluster_id).big(0x10, h.member_id).uint(0x18, h.revision).uint(0x20, h.raft_term).finish();
  lastHeader = { h: { ...h }, bytes };
  return bytes;
}

/** A key-value's lease field (6), or nothing for no lease: what follows the value in its encoding. */
export function leaseField(lease: string): Buffer {
  return lease === '0' ? EMPTY : Buffer.concat([Buffer.of(0x30), bigVarint(lease)]);
}

/**
 * Everything of a key-value's encoding before its value bytes, prefixed with the tag (field 2, length-delimited) and
 * length of the whole key-value: `head ‖ value ‖ leaseField(lease)` is one entry of RangeResponse.kvs (also
 * Event.kv and PutResponse.prev_kv, all field 2). The store keeps it beside each version of a key.
 */
export function kvHead(key: Buffer, createRevision: number, modRevision: number, version: number, valueLength: number, tailLength: number): Buffer {
  const fixed =
    (key.length > 0 ? 1 + varintSize(key.length) + key.length : 0) +
    (createRevision ? 1 + varintSize(createRevision) : 0) +
    (modRevision ? 1 + varintSize(modRevision) : 0) +
    (version ? 1 + varintSize(version) : 0) +
    (valueLength > 0 ? 1 + varintSize(valueLength) : 0);
  const total = fixed + valueLength + tailLength;
  const buf = Buffer.allocUnsafe(1 + varintSize(total) + fixed);
  buf[0] = 0x12;
  let at = writeVarint(buf, 1, total);
  if (key.length > 0) {
    buf[at++] = 0x0a;
    at = writeVarint(buf, at, key.length);
    at += key.copy(buf, at);
  }
  if (createRevision) (buf[at++] = 0x10), (at = writeVarint(buf, at, createRevision));
  if (modRevision) (buf[at++] = 0x18), (at = writeVarint(buf, at, modRevision));
  if (version) (buf[at++] = 0x20), (at = writeVarint(buf, at, version));
  if (valueLength > 0) (buf[at++] = 0x2a), (at = writeVarint(buf, at, valueLength));
  return buf;
}

/** A key-value as field 2 of its parent (tag, length, body). */
export function kvField2(kv: KeyValue): Buffer {
  const tail = leaseField(kv.lease);
  const head = kvHead(kv.key, kv.create_revision, kv.mod_revision, kv.version, kv.value.length, tail.length);
  return Buffer.concat([head, kv.value, tail], head.length + kv.value.length + tail.length);
}

/** The same key-value under another field number (tag byte `tag`), e.g. Event.prev_kv (3). */
function kvAs(tag: number, kv: KeyValue): Buffer {
  const f = kvField2(kv);
  return tag === 0x12 ? f : Buffer.concat([Buffer.of(tag), f.subarray(1)]);
}

/** RangeResponse from its key-values already encoded as consecutive field-2 entries. */
export function encodeRangeResponse(header: ResponseHeader, kvs: Buffer, more: boolean, count: number): Encoded {
  return new Encoded(new Writer().bytes(0x0a, encodeHeader(header), true).raw(kvs).bool(0x18, more).uint(0x20, count).finish());
}

export function encodePutResponse(header: ResponseHeader, prevKv: KeyValue | undefined): Encoded {
  const w = new Writer().bytes(0x0a, encodeHeader(header), true);
  if (prevKv) w.raw(kvField2(prevKv));
  return new Encoded(w.finish());
}

export interface WireEventLike {
  type: 'PUT' | 'DELETE';
  kv: KeyValue;
  prev_kv?: KeyValue;
}

/**
 * Encoded events without prev_kv, per key-value object: one commit's events go to many watchers. Each object belongs
 * to one event (a delete makes its own), but the type is part of the key all the same.
 */
const putEvents = new WeakMap<KeyValue, Buffer>();
const deleteEvents = new WeakMap<KeyValue, Buffer>();

/** mvccpb.Event as field 11 of WatchResponse. */
function eventField(e: WireEventLike): Buffer {
  const cache = e.prev_kv ? undefined : e.type === 'DELETE' ? deleteEvents : putEvents;
  const cached = cache?.get(e.kv);
  if (cached) return cached;
  const body = new Writer();
  if (e.type === 'DELETE') body.raw(Buffer.of(0x08, 1));
  body.raw(kvField2(e.kv));
  if (e.prev_kv) body.raw(kvAs(0x1a, e.prev_kv));
  const encoded = new Writer().bytes(0x5a, body.finish(), true).finish();
  cache?.set(e.kv, encoded);
  return encoded;
}

export interface WatchResponseLike {
  header: ResponseHeader;
  watch_id: number;
  created?: boolean;
  canceled?: boolean;
  compact_revision?: number;
  cancel_reason?: string;
  events?: WireEventLike[];
}

export function encodeWatchResponse(r: WatchResponseLike): Encoded {
  const w = new Writer().bytes(0x0a, encodeHeader(r.header), true);
  if (r.watch_id !== 0) w.raw(Buffer.of(0x10)).raw(bigVarint(r.watch_id));
  w.bool(0x18, r.created).bool(0x20, r.canceled);
  if (r.compact_revision) w.uint(0x28, r.compact_revision);
  if (r.cancel_reason) w.bytes(0x32, Buffer.from(r.cancel_reason, 'utf8'));
  for (const e of r.events ?? []) w.raw(eventField(e));
  return new Encoded(w.finish());
}

const EMPTY = Buffer.alloc(0);
