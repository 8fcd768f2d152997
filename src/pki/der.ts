// Strict DER: a reader that refuses every encoding DER does not allow, and writers that size each structure once.
import { isUtf8 } from 'node:buffer';
import { invalid, type TrustplaneError } from '../util/errors.js';

export const Tag = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  NUMERIC_STRING: 0x12,
  PRINTABLE_STRING: 0x13,
  TELETEX_STRING: 0x14,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  UNIVERSAL_STRING: 0x1c,
  BMP_STRING: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

const UNIVERSAL_NAMES: Record<number, string> = {
  0x01: 'BOOLEAN',
  0x02: 'INTEGER',
  0x03: 'BIT STRING',
  0x04: 'OCTET STRING',
  0x05: 'NULL',
  0x06: 'OBJECT IDENTIFIER',
  0x0c: 'UTF8String',
  0x12: 'NumericString',
  0x13: 'PrintableString',
  0x14: 'TeletexString',
  0x16: 'IA5String',
  0x17: 'UTCTime',
  0x18: 'GeneralizedTime',
  0x1c: 'UniversalString',
  0x1e: 'BMPString',
  0x30: 'SEQUENCE',
  0x31: 'SET',
};

/** "SEQUENCE (0x30)", "[0] constructed (0xa0)": how a tag byte is named in messages. */
export function describeTag(tag: number): string {
  const hex = `0x${tag.toString(16).padStart(2, '0')}`;
  const known = UNIVERSAL_NAMES[tag];
  if (known) return `${known} (${hex})`;
  const cls = tag >> 6;
  const form = tag & 0x20 ? 'constructed' : 'primitive';
  if (cls === 2 && (tag & 0x1f) !== 0x1f) return `[${tag & 0x1f}] ${form} (${hex})`;
  return `tag ${hex}`;
}

/** One element: its tag byte, where its header starts, where its contents start and where it ends. */
export interface Tlv {
  tag: number;
  start: number;
  body: number;
  end: number;
}

/**
 * A cursor over the elements of one constructed value (or a whole input). Every read names the field it expects,
 * so a refusal says which field was wrong, what was wrong with it, and at which byte.
 */
export class DerReader {
  pos: number;

  constructor(
    readonly buf: Buffer,
    start: number,
    readonly end: number,
    /** What the whole input is ("certificate request"), the first words of every message. */
    readonly context: string,
  ) {
    this.pos = start;
  }

  static over(buf: Buffer, context: string): DerReader {
    return new DerReader(buf, 0, buf.length, context);
  }

  fail(message: string): TrustplaneError {
    return invalid(`${this.context}: ${message}`);
  }

  get atEnd(): boolean {
    return this.pos >= this.end;
  }

  /** The tag byte of the next element, or -1 at the end. */
  peekTag(): number {
    return this.pos < this.end ? this.buf[this.pos] : -1;
  }

  /** The next element, whatever its tag. */
  any(what: string): Tlv {
    const buf = this.buf;
    const start = this.pos;
    const limit = this.end;
    if (start >= limit) throw this.fail(`${what} is missing: its enclosing structure ends at byte ${limit}`);
    const tag = buf[start];
    if ((tag & 0x1f) === 0x1f) throw this.fail(`${what}: high-tag-number form (0x${tag.toString(16)}) at byte ${start} is not supported`);
    if (tag === 0) throw this.fail(`${what}: end-of-contents marker at byte ${start} is not allowed in DER`);
    if (start + 1 >= limit) throw this.fail(`${what}: truncated: the length byte at ${start + 1} is missing`);
    let len = buf[start + 1];
    let body = start + 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n === 0) throw this.fail(`${what}: indefinite length at byte ${start + 1} is not allowed in DER`);
      if (n > 3) {
        // Leading zero length bytes: a small length written long, which DER forbids; say that rather than "too large".
        if (body < limit && buf[body] === 0) {
          throw this.fail(`${what}: non-minimal length encoding (${n} length bytes with a leading zero byte) at byte ${start + 1}`);
        }
        throw this.fail(`${what}: a length of ${n} length bytes at byte ${start + 1} is too large (at most 3: 16 MiB)`);
      }
      if (body + n > limit) throw this.fail(`${what}: truncated: ${n} length bytes at byte ${start + 1} run past byte ${limit}`);
      if (buf[body] === 0) throw this.fail(`${what}: non-minimal length encoding (leading zero byte) at byte ${start + 1}`);
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + buf[body + i];
      if (len < 0x80) throw this.fail(`${what}: non-minimal length encoding at byte ${start + 1}: ${len} needs the short form`);
      body += n;
    }
    const end = body + len;
    if (end > limit) {
      throw this.fail(`${what}: truncated: length ${len} at byte ${start + 1} runs past the end of its enclosing structure (byte ${limit})`);
    }
    this.pos = end;
    return { tag, start, body, end };
  }

  /** The next element, which must have `tag`. */
  read(tag: number, what: string): Tlv {
    if (this.pos < this.end && this.buf[this.pos] !== tag) {
      if ((this.buf[this.pos] & 0x1f) === 0x1f) this.any(what); // reports the high-tag-number form itself
      throw this.fail(`${what}: expected ${describeTag(tag)} but found ${describeTag(this.buf[this.pos])} at byte ${this.pos}`);
    }
    return this.any(what);
  }

  /** The next element if it has `tag`; otherwise nothing is consumed. */
  optional(tag: number, what: string): Tlv | undefined {
    return this.pos < this.end && this.buf[this.pos] === tag ? this.any(what) : undefined;
  }

  /** A reader over the contents of `t`. */
  inside(t: Tlv): DerReader {
    return new DerReader(this.buf, t.body, t.end, this.context);
  }

  /** Reads a SEQUENCE and returns a reader over its contents. */
  sequence(what: string): DerReader {
    return this.inside(this.read(Tag.SEQUENCE, what));
  }

  /** Refuses anything left after the last element a structure may hold. */
  finish(what: string): void {
    if (this.pos !== this.end) {
      throw this.fail(`${what}: unexpected data (${this.end - this.pos} bytes) at byte ${this.pos} after its last element`);
    }
  }

  bytes(t: Tlv): Buffer {
    return this.buf.subarray(t.start, t.end);
  }

  contents(t: Tlv): Buffer {
    return this.buf.subarray(t.body, t.end);
  }

  /** INTEGER contents (two's complement, minimal). */
  integer(what: string): Buffer {
    const t = this.read(Tag.INTEGER, what);
    const len = t.end - t.body;
    if (len === 0) throw this.fail(`${what}: empty INTEGER at byte ${t.start}`);
    if (len > 1) {
      const b0 = this.buf[t.body];
      const b1 = this.buf[t.body + 1];
      if ((b0 === 0 && (b1 & 0x80) === 0) || (b0 === 0xff && (b1 & 0x80) !== 0)) {
        throw this.fail(`${what}: non-minimal INTEGER encoding at byte ${t.start}`);
      }
    }
    return this.buf.subarray(t.body, t.end);
  }

  /** A non-negative INTEGER no larger than `max`. */
  smallInt(what: string, max: number): number {
    const b = this.integer(what);
    if (b[0] & 0x80) throw this.fail(`${what}: must not be negative`);
    if (b.length > 7) throw this.fail(`${what}: ${b.length}-byte value is larger than ${max}`);
    let v = 0;
    for (let i = 0; i < b.length; i++) v = v * 256 + b[i];
    if (v > max) throw this.fail(`${what}: ${v} is larger than ${max}`);
    return v;
  }

  boolean(what: string): boolean {
    const t = this.read(Tag.BOOLEAN, what);
    if (t.end - t.body !== 1) throw this.fail(`${what}: BOOLEAN at byte ${t.start} must be one byte, not ${t.end - t.body}`);
    const v = this.buf[t.body];
    if (v === 0xff) return true;
    if (v === 0x00) return false;
    throw this.fail(`${what}: BOOLEAN value 0x${v.toString(16)} at byte ${t.start} must be 0x00 or 0xff in DER`);
  }

  null(what: string): void {
    const t = this.read(Tag.NULL, what);
    if (t.end !== t.body) throw this.fail(`${what}: NULL at byte ${t.start} must be empty`);
  }

  oid(what: string): string {
    const t = this.read(Tag.OID, what);
    return decodeOid(this, t, what);
  }

  /** BIT STRING: the number of unused bits in the last byte, and the bytes after the unused-bits octet. */
  bitString(what: string): { unused: number; bits: Buffer } {
    const t = this.read(Tag.BIT_STRING, what);
    const len = t.end - t.body;
    if (len === 0) throw this.fail(`${what}: BIT STRING at byte ${t.start} lacks its unused-bits octet`);
    const unused = this.buf[t.body];
    if (unused > 7) throw this.fail(`${what}: BIT STRING at byte ${t.start} claims ${unused} unused bits (at most 7)`);
    if (len === 1 && unused !== 0) throw this.fail(`${what}: empty BIT STRING at byte ${t.start} claims ${unused} unused bits`);
    if (unused && (this.buf[t.end - 1] & ((1 << unused) - 1)) !== 0) {
      throw this.fail(`${what}: BIT STRING at byte ${t.start} has non-zero padding bits`);
    }
    return { unused, bits: this.buf.subarray(t.body + 1, t.end) };
  }

  /** A BIT STRING that carries whole bytes (keys, signatures). */
  octetAlignedBits(what: string): Buffer {
    const { unused, bits } = this.bitString(what);
    if (unused !== 0) throw this.fail(`${what}: BIT STRING must have no unused bits, has ${unused}`);
    return bits;
  }

  octetString(what: string): Buffer {
    const t = this.read(Tag.OCTET_STRING, what);
    return this.buf.subarray(t.body, t.end);
  }

  /** UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ), the only forms DER and RFC 5280 allow. */
  time(what: string): Date {
    const t = this.any(what);
    const b = this.buf;
    const len = t.end - t.body;
    let year: number;
    let p = t.body;
    if (t.tag === Tag.UTC_TIME) {
      if (len !== 13) throw this.fail(`${what}: UTCTime at byte ${t.start} must be YYMMDDHHMMSSZ (13 characters), has ${len}`);
      const yy = digits(b, p, 2);
      if (yy < 0) throw this.fail(`${what}: UTCTime at byte ${t.start} has a non-digit in its year`);
      year = yy < 50 ? 2000 + yy : 1900 + yy;
      p += 2;
    } else if (t.tag === Tag.GENERALIZED_TIME) {
      if (len !== 15) throw this.fail(`${what}: GeneralizedTime at byte ${t.start} must be YYYYMMDDHHMMSSZ (15 characters), has ${len}`);
      year = digits(b, p, 4);
      if (year < 0) throw this.fail(`${what}: GeneralizedTime at byte ${t.start} has a non-digit in its year`);
      if (year < 2050) throw this.fail(`${what}: GeneralizedTime for ${year} at byte ${t.start}: dates before 2050 must be UTCTime (RFC 5280 4.1.2.5)`);
      p += 4;
    } else {
      throw this.fail(`${what}: expected UTCTime or GeneralizedTime but found ${describeTag(t.tag)} at byte ${t.start}`);
    }
    const month = digits(b, p, 2);
    const day = digits(b, p + 2, 2);
    const hour = digits(b, p + 4, 2);
    const minute = digits(b, p + 6, 2);
    const second = digits(b, p + 8, 2);
    if (month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0 || b[p + 10] !== 0x5a) {
      throw this.fail(`${what}: time at byte ${t.start} is not of the form ${t.tag === Tag.UTC_TIME ? 'YY' : 'YYYY'}MMDDHHMMSSZ`);
    }
    if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || second > 59) {
      throw this.fail(`${what}: time at byte ${t.start} is not a valid date`);
    }
    return new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  }

  /** The OBJECT IDENTIFIER in the contents of `t`, whatever its (implicit) tag. */
  oidOf(t: Tlv, what: string): string {
    return decodeOid(this, t, what);
  }

  /**
   * Checks that `t` (an ANY value nobody interprets) is well-formed DER all the way down: constructed contents are
   * elements, and universal primitives obey their own rules.
   */
  wellFormed(t: Tlv, what: string, depth = 0): void {
    if (depth > 32) throw this.fail(`${what}: nested more than 32 levels deep`);
    const r = new DerReader(this.buf, t.start, t.end, this.context);
    switch (t.tag) {
      case Tag.BOOLEAN:
        r.boolean(what);
        return;
      case Tag.INTEGER:
        r.integer(what);
        return;
      case Tag.BIT_STRING:
        r.bitString(what);
        return;
      case Tag.NULL:
        r.null(what);
        return;
      case Tag.OID:
        r.oid(what);
        return;
      case Tag.UTC_TIME:
      case Tag.GENERALIZED_TIME:
        r.time(what);
        return;
      case Tag.UTF8_STRING:
      case Tag.PRINTABLE_STRING:
      case Tag.IA5_STRING:
      case Tag.NUMERIC_STRING:
      case Tag.TELETEX_STRING:
      case Tag.BMP_STRING:
      case Tag.UNIVERSAL_STRING:
        r.string(what);
        return;
    }
    if (t.tag & 0x20) {
      const inner = this.inside(t);
      let prev: Buffer | undefined;
      while (!inner.atEnd) {
        const c = inner.any(what);
        if (t.tag === Tag.SET) {
          const enc = inner.bytes(c);
          if (prev && Buffer.compare(prev, enc) > 0) throw this.fail(`${what}: SET elements are not in DER order`);
          prev = enc;
        }
        inner.wellFormed(c, what, depth + 1);
      }
    } else if ((t.tag & 0xc0) === 0 && t.tag !== Tag.OCTET_STRING) {
      throw this.fail(`${what}: universal ${describeTag(t.tag)} is not supported here`);
    }
  }

  /** A directory string (UTF8String, PrintableString, IA5String, TeletexString, BMPString, UniversalString, NumericString). */
  string(what: string): string {
    const t = this.any(what);
    return decodeString(this, t, what);
  }
}

function digits(b: Buffer, p: number, n: number): number {
  let v = 0;
  for (let i = 0; i < n; i++) {
    const c = b[p + i] - 0x30;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v;
}

function daysIn(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

function decodeOid(r: DerReader, t: Tlv, what: string): string {
  const b = r.buf;
  if (t.end === t.body) throw r.fail(`${what}: empty OBJECT IDENTIFIER at byte ${t.start}`);
  if (b[t.end - 1] & 0x80) throw r.fail(`${what}: OBJECT IDENTIFIER at byte ${t.start} ends inside a sub-identifier`);
  let out = '';
  let v = 0;
  let first = true;
  let startOfSub = true;
  for (let i = t.body; i < t.end; i++) {
    const c = b[i];
    if (startOfSub && c === 0x80) throw r.fail(`${what}: non-minimal sub-identifier in OBJECT IDENTIFIER at byte ${i}`);
    v = v * 128 + (c & 0x7f);
    if (v > Number.MAX_SAFE_INTEGER) throw r.fail(`${what}: OBJECT IDENTIFIER arc at byte ${i} is too large`);
    if (c & 0x80) {
      startOfSub = false;
      continue;
    }
    if (first) {
      out = v < 40 ? `0.${v}` : v < 80 ? `1.${v - 40}` : `2.${v - 80}`;
      first = false;
    } else {
      out += `.${v}`;
    }
    v = 0;
    startOfSub = true;
  }
  return out;
}

// PrintableString per X.680, plus '*' and '&', which Go and browsers accept because real CAs put them there.
const PRINTABLE = (() => {
  const ok = new Uint8Array(128);
  for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?*&") ok[c.charCodeAt(0)] = 1;
  return ok;
})();

function decodeString(r: DerReader, t: Tlv, what: string): string {
  const b = r.buf;
  switch (t.tag) {
    case Tag.UTF8_STRING: {
      const s = b.subarray(t.body, t.end);
      if (!isUtf8(s)) throw r.fail(`${what}: UTF8String at byte ${t.start} is not valid UTF-8`);
      return s.toString('utf8');
    }
    case Tag.PRINTABLE_STRING:
      for (let i = t.body; i < t.end; i++) {
        if (b[i] > 127 || !PRINTABLE[b[i]]) throw r.fail(`${what}: PrintableString at byte ${t.start} holds a character (0x${b[i].toString(16)}) it may not`);
      }
      return b.toString('latin1', t.body, t.end);
    case Tag.IA5_STRING:
      for (let i = t.body; i < t.end; i++) {
        if (b[i] > 127) throw r.fail(`${what}: IA5String at byte ${t.start} holds a non-ASCII byte (0x${b[i].toString(16)})`);
      }
      return b.toString('latin1', t.body, t.end);
    case Tag.NUMERIC_STRING:
      for (let i = t.body; i < t.end; i++) {
        if (b[i] !== 0x20 && (b[i] < 0x30 || b[i] > 0x39)) throw r.fail(`${what}: NumericString at byte ${t.start} holds a non-digit`);
      }
      return b.toString('latin1', t.body, t.end);
    case Tag.TELETEX_STRING:
      // T.61 is read as Latin-1, as OpenSSL and Go do; real certificates only ever put ASCII there.
      return b.toString('latin1', t.body, t.end);
    case Tag.BMP_STRING: {
      const len = t.end - t.body;
      if (len % 2) throw r.fail(`${what}: BMPString at byte ${t.start} has an odd length`);
      let s = '';
      for (let i = t.body; i < t.end; i += 2) {
        const u = (b[i] << 8) | b[i + 1];
        if (u >= 0xd800 && u <= 0xdfff) throw r.fail(`${what}: BMPString at byte ${t.start} holds a surrogate code unit`);
        s += String.fromCharCode(u);
      }
      return s;
    }
    case Tag.UNIVERSAL_STRING: {
      const len = t.end - t.body;
      if (len % 4) throw r.fail(`${what}: UniversalString at byte ${t.start} has a length that is not a multiple of 4`);
      let s = '';
      for (let i = t.body; i < t.end; i += 4) {
        const cp = b.readUInt32BE(i);
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) throw r.fail(`${what}: UniversalString at byte ${t.start} holds an invalid code point`);
        s += String.fromCodePoint(cp);
      }
      return s;
    }
    default:
      throw r.fail(`${what}: expected a string but found ${describeTag(t.tag)} at byte ${t.start}`);
  }
}

// ---- writing ----

/** A constructed value whose size is known before any byte is written, so the whole output is allocated once. */
export class DerNode {
  readonly contentLength: number;
  readonly size: number;
  constructor(
    readonly tag: number,
    readonly parts: readonly Der[],
  ) {
    let n = 0;
    for (const p of parts) n += p instanceof DerNode ? p.size : p.length;
    this.contentLength = n;
    this.size = headerSize(n) + n;
  }
}

/** Either finished bytes (a whole TLV, or several) or a node still to be laid out. */
export type Der = Buffer | DerNode;

export function headerSize(len: number): number {
  return len < 0x80 ? 2 : len < 0x100 ? 3 : len < 0x10000 ? 4 : 5;
}

function writeHeader(out: Buffer, pos: number, tag: number, len: number): number {
  out[pos++] = tag;
  if (len < 0x80) {
    out[pos++] = len;
  } else if (len < 0x100) {
    out[pos++] = 0x81;
    out[pos++] = len;
  } else if (len < 0x10000) {
    out[pos++] = 0x82;
    out[pos++] = len >> 8;
    out[pos++] = len & 0xff;
  } else {
    out[pos++] = 0x83;
    out[pos++] = len >> 16;
    out[pos++] = (len >> 8) & 0xff;
    out[pos++] = len & 0xff;
  }
  return pos;
}

function writeDer(d: Der, out: Buffer, pos: number): number {
  if (!(d instanceof DerNode)) {
    d.copy(out, pos);
    return pos + d.length;
  }
  pos = writeHeader(out, pos, d.tag, d.contentLength);
  for (const p of d.parts) pos = writeDer(p, out, pos);
  return pos;
}

export function node(tag: number, ...parts: Der[]): DerNode {
  return new DerNode(tag, parts);
}

export function seq(...parts: Der[]): DerNode {
  return new DerNode(Tag.SEQUENCE, parts);
}

/** Lays out a value into one new Buffer. */
export function encode(d: Der): Buffer {
  if (!(d instanceof DerNode)) return d;
  const out = Buffer.allocUnsafe(d.size);
  writeDer(d, out, 0);
  return out;
}

/** A primitive TLV around `content`. */
export function primitive(tag: number, content: Buffer): Buffer {
  const out = Buffer.allocUnsafe(headerSize(content.length) + content.length);
  content.copy(out, writeHeader(out, 0, tag, content.length));
  return out;
}

function primitiveString(tag: number, s: string, encoding: 'utf8' | 'latin1'): Buffer {
  const len = Buffer.byteLength(s, encoding);
  const out = Buffer.allocUnsafe(headerSize(len) + len);
  out.write(s, writeHeader(out, 0, tag, len), encoding);
  return out;
}

export const DER_NULL = Buffer.from([0x05, 0x00]);
export const DER_TRUE = Buffer.from([0x01, 0x01, 0xff]);

/** A non-negative INTEGER from big-endian magnitude bytes: leading zeros stripped, a zero byte added when the top bit is set. */
export function derUnsigned(magnitude: Buffer): Buffer {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const m = magnitude.subarray(i);
  if (m.length === 0) return Buffer.from([0x02, 0x01, 0x00]);
  const pad = m[0] & 0x80 ? 1 : 0;
  const len = m.length + pad;
  const out = Buffer.allocUnsafe(headerSize(len) + len);
  let p = writeHeader(out, 0, Tag.INTEGER, len);
  if (pad) out[p++] = 0;
  m.copy(out, p);
  return out;
}

export function derSmallInt(n: number): Buffer {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`derSmallInt: ${n}`);
  const bytes: number[] = [];
  do {
    bytes.unshift(n % 256);
    n = Math.floor(n / 256);
  } while (n > 0);
  if (bytes[0] & 0x80) bytes.unshift(0);
  return Buffer.from([Tag.INTEGER, bytes.length, ...bytes]);
}

/** OBJECT IDENTIFIER from dotted form; callers encode constants once. */
export function derOid(dotted: string): Buffer {
  const arcs = dotted.split('.').map((a) => {
    if (!/^(0|[1-9][0-9]*)$/.test(a)) throw invalid(`"${dotted}" is not a dotted object identifier`);
    return Number(a);
  });
  if (arcs.length < 2 || arcs[0] > 2 || (arcs[0] < 2 && arcs[1] >= 40) || arcs.some((a) => !Number.isSafeInteger(a))) {
    throw invalid(`"${dotted}" is not a valid object identifier`);
  }
  const subs = [arcs[0] * 40 + arcs[1], ...arcs.slice(2)];
  const body: number[] = [];
  for (let v of subs) {
    const chunk = [v % 128];
    v = Math.floor(v / 128);
    while (v > 0) {
      chunk.unshift((v % 128) | 0x80);
      v = Math.floor(v / 128);
    }
    body.push(...chunk);
  }
  return primitive(Tag.OID, Buffer.from(body));
}

export function derUtf8(s: string): Buffer {
  return primitiveString(Tag.UTF8_STRING, s, 'utf8');
}

/** For strings already checked to be ASCII. */
export function derAscii(tag: number, s: string): Buffer {
  return primitiveString(tag, s, 'latin1');
}

export function derOctetString(b: Buffer): Buffer {
  return primitive(Tag.OCTET_STRING, b);
}

/** A BIT STRING of whole bytes. */
export function derBitString(b: Buffer): Buffer {
  const len = b.length + 1;
  const out = Buffer.allocUnsafe(headerSize(len) + len);
  const p = writeHeader(out, 0, Tag.BIT_STRING, len);
  out[p] = 0;
  b.copy(out, p + 1);
  return out;
}

function two(out: Buffer, p: number, v: number): void {
  out[p] = 0x30 + ((v / 10) | 0);
  out[p + 1] = 0x30 + (v % 10);
}

/** UTCTime for 1950–2049, GeneralizedTime for 2050–9999 (RFC 5280 4.1.2.5); sub-second parts are dropped. */
export function derTime(d: Date): Buffer {
  const year = d.getUTCFullYear();
  if (!(year >= 1950 && year <= 9999)) throw new RangeError(`derTime: year ${year} is outside 1950–9999`);
  const utc = year < 2050;
  const len = utc ? 13 : 15;
  const out = Buffer.allocUnsafe(2 + len);
  out[0] = utc ? Tag.UTC_TIME : Tag.GENERALIZED_TIME;
  out[1] = len;
  let p = 2;
  if (utc) {
    two(out, p, year % 100);
    p += 2;
  } else {
    two(out, p, Math.floor(year / 100));
    two(out, p + 2, year % 100);
    p += 4;
  }
  two(out, p, d.getUTCMonth() + 1);
  two(out, p + 2, d.getUTCDate());
  two(out, p + 4, d.getUTCHours());
  two(out, p + 6, d.getUTCMinutes());
  two(out, p + 8, d.getUTCSeconds());
  out[p + 10] = 0x5a;
  return out;
}
