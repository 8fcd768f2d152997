// The X.509 extensions trustplane writes and understands: basic constraints, key usage, EKU, SAN, SKI and AKI.
import { isIPv4, isIPv6 } from 'node:net';
import { invalid } from '../util/errors.js';
import {
  type Der,
  DER_TRUE,
  DerReader,
  Tag,
  describeTag,
  derAscii,
  derBitString,
  derOctetString,
  derOid,
  derSmallInt,
  encode,
  primitive,
  seq,
} from './der.js';
import { readName } from './name.js';
import { OID } from './oids.js';
import type { ExtKeyUsage, Extension, KeyUsage, SubjectAltNames } from './types.js';

// ---- extension lists ----

/** Reads `Extensions ::= SEQUENCE SIZE (1..MAX) OF Extension`, refusing duplicates (RFC 5280 4.2). */
export function readExtensions(r: DerReader, what: string, allowEmpty = false): Extension[] {
  const list = r.sequence(what);
  if (list.atEnd && !allowEmpty) throw r.fail(`${what}: must hold at least one extension`);
  const out: Extension[] = [];
  while (!list.atEnd) {
    const ext = list.sequence(`${what} entry ${out.length + 1}`);
    const oid = ext.oid(`${what} entry ${out.length + 1} extnID`);
    let critical = false;
    if (ext.peekTag() === Tag.BOOLEAN) {
      critical = ext.boolean(`extension ${oid} critical`);
      // DER leaves out a value equal to its DEFAULT.
      if (!critical) throw r.fail(`extension ${oid}: critical FALSE must be omitted in DER (it is the default)`);
    }
    const value = ext.octetString(`extension ${oid} extnValue`);
    ext.finish(`extension ${oid}`);
    for (const e of out) if (e.oid === oid) throw r.fail(`${what}: extension ${oid} appears twice`);
    out.push({ oid, critical, value });
  }
  return out;
}

/** One Extension, DER. */
export function encodeExtension(oid: string | Buffer, critical: boolean, value: Der): Der {
  const oidDer = typeof oid === 'string' ? derOid(oid) : oid;
  const v = encode(value);
  return critical ? seq(oidDer, DER_TRUE, derOctetString(v)) : seq(oidDer, derOctetString(v));
}

// ---- basic constraints ----

export function encodeBasicConstraints(isCA: boolean, pathLen?: number): Buffer {
  if (!isCA) return Buffer.from([0x30, 0x00]);
  return encode(pathLen === undefined ? seq(DER_TRUE) : seq(DER_TRUE, derSmallInt(pathLen)));
}

export function decodeBasicConstraints(value: Buffer, context: string): { isCA: boolean; pathLen?: number } {
  const r = new DerReader(value, 0, value.length, `${context}: basicConstraints`);
  const s = r.sequence('BasicConstraints');
  let isCA = false;
  if (s.peekTag() === Tag.BOOLEAN) {
    isCA = s.boolean('cA');
    if (!isCA) throw r.fail('cA FALSE must be omitted in DER (it is the default)');
  }
  let pathLen: number | undefined;
  if (!s.atEnd) pathLen = s.smallInt('pathLenConstraint', 0x7fffffff);
  s.finish('BasicConstraints');
  r.finish('BasicConstraints');
  if (pathLen !== undefined && !isCA) throw r.fail('pathLenConstraint is only allowed with cA TRUE');
  return pathLen === undefined ? { isCA } : { isCA, pathLen };
}

// ---- key usage ----

const KEY_USAGE_BITS: readonly KeyUsage[] = [
  'digitalSignature',
  'nonRepudiation',
  'keyEncipherment',
  'dataEncipherment',
  'keyAgreement',
  'keyCertSign',
  'cRLSign',
];

export function encodeKeyUsage(usages: readonly KeyUsage[]): Buffer {
  if (usages.length === 0) throw invalid('keyUsage must name at least one usage');
  let bits = 0;
  for (const u of usages) {
    const i = KEY_USAGE_BITS.indexOf(u);
    if (i < 0) throw invalid(`key usage "${u}" is not known; use one of ${KEY_USAGE_BITS.join(', ')}`);
    const bit = 0x80 >> i;
    if (bits & bit) throw invalid(`key usage "${u}" is named twice`);
    bits |= bit;
  }
  // A named bit list drops its trailing zero bits in DER (X.690 11.2.2).
  let unused = 0;
  while (!(bits & (1 << unused))) unused++;
  return Buffer.from([Tag.BIT_STRING, 0x02, unused, bits]);
}

/** Usages in bit order. encipherOnly and decipherOnly (bits 7, 8) are accepted and not reported. */
export function decodeKeyUsage(value: Buffer, context: string): KeyUsage[] {
  const r = new DerReader(value, 0, value.length, `${context}: keyUsage`);
  const { unused, bits } = r.bitString('KeyUsage');
  r.finish('KeyUsage');
  if (bits.length === 0 || bits.every((b) => b === 0)) throw r.fail('KeyUsage must assert at least one usage');
  if (bits.length > 2) throw r.fail(`KeyUsage has ${bits.length * 8 - unused} bits; at most 9 are defined`);
  if (bits[bits.length - 1] === 0 || !(bits[bits.length - 1] & (1 << unused))) {
    throw r.fail('KeyUsage has trailing zero bits, which DER removes from a named bit list');
  }
  const out: KeyUsage[] = [];
  for (let i = 0; i < KEY_USAGE_BITS.length; i++) if (bits[0] & (0x80 >> i)) out.push(KEY_USAGE_BITS[i]);
  return out;
}

// ---- extended key usage ----

/** The OID of each extended key usage trustplane names. */
export const EKU_OIDS: Readonly<Record<ExtKeyUsage, string>> = {
  serverAuth: OID.serverAuth,
  clientAuth: OID.clientAuth,
  codeSigning: OID.codeSigning,
  emailProtection: OID.emailProtection,
  timeStamping: OID.timeStamping,
  OCSPSigning: OID.OCSPSigning,
};
const EKU_BY_OID: Record<string, ExtKeyUsage> = Object.fromEntries(Object.entries(EKU_OIDS).map(([k, v]) => [v, k as ExtKeyUsage]));
const EKU_DER = new Map<ExtKeyUsage, Buffer>();

export function encodeExtKeyUsage(usages: readonly ExtKeyUsage[]): Buffer {
  if (usages.length === 0) throw invalid('extKeyUsage, when given, must name at least one usage');
  const parts: Buffer[] = [];
  for (const u of usages) {
    const oid = EKU_OIDS[u];
    if (!oid) throw invalid(`extended key usage "${u}" is not known; use one of ${Object.keys(EKU_OIDS).join(', ')}`);
    if (usages.indexOf(u) !== usages.lastIndexOf(u)) throw invalid(`extended key usage "${u}" is named twice`);
    let d = EKU_DER.get(u);
    if (!d) EKU_DER.set(u, (d = derOid(oid)));
    parts.push(d);
  }
  return encode(seq(...parts));
}

/** The known usages by name, and every usage OID in order (unknown ones such as anyExtendedKeyUsage included). */
export function decodeExtKeyUsage(value: Buffer, context: string): { usages: ExtKeyUsage[]; oids: string[] } {
  const r = new DerReader(value, 0, value.length, `${context}: extKeyUsage`);
  const s = r.sequence('ExtKeyUsageSyntax');
  r.finish('ExtKeyUsageSyntax');
  if (s.atEnd) throw r.fail('ExtKeyUsageSyntax must hold at least one usage');
  const usages: ExtKeyUsage[] = [];
  const oids: string[] = [];
  while (!s.atEnd) {
    const oid = s.oid(`KeyPurposeId ${oids.length + 1}`);
    oids.push(oid);
    const known = EKU_BY_OID[oid];
    if (known) usages.push(known);
  }
  return { usages, oids };
}

// ---- subject alternative names ----

export function emptySans(): SubjectAltNames {
  return { dns: [], ip: [], uri: [], email: [] };
}

/** For text already checked by net.isIPv4. */
function ipv4Bytes(s: string): Buffer {
  const out = Buffer.alloc(4);
  let part = 0;
  let v = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x2e) {
      out[part++] = v;
      v = 0;
    } else v = v * 10 + (c - 0x30);
  }
  out[part] = v;
  return out;
}

function ipv6Bytes(s: string): Buffer {
  const out = Buffer.alloc(16);
  let tail = s;
  let v4: Buffer | undefined;
  const lastColon = s.lastIndexOf(':');
  if (s.indexOf('.', lastColon) >= 0) {
    v4 = ipv4Bytes(s.slice(lastColon + 1));
    tail = s.slice(0, lastColon + 1) + '0:0';
  }
  const [head, rest] = tail.includes('::') ? tail.split('::') : [tail, undefined];
  const h = head ? head.split(':') : [];
  const t = rest === undefined ? [] : rest ? rest.split(':') : [];
  const groups = rest === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  if (v4) v4.copy(out, 12);
  return out;
}

/** Textual IPv4 or IPv6 → 4 or 16 bytes. */
export function ipToBytes(ip: string): Buffer {
  if (isIPv4(ip)) return ipv4Bytes(ip);
  if (isIPv6(ip) && !ip.includes('%')) return ipv6Bytes(ip);
  throw invalid(`"${ip}" is not an IP address`);
}

/** 4 or 16 bytes → dotted IPv4, or IPv6 as RFC 5952 writes it (IPv4-mapped as ::ffff:a.b.c.d). */
export function bytesToIp(b: Buffer): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((b[i] << 8) | b[i + 1]);
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestAt < 0) return hex.join(':');
  return `${hex.slice(0, bestAt).join(':')}::${hex.slice(bestAt + bestLen).join(':')}`;
}

const ASCII_NO_SPACE = /^[\x21-\x7e]+$/;

function checkSanText(kind: string, v: unknown): string {
  if (typeof v !== 'string' || !ASCII_NO_SPACE.test(v)) throw invalid(`${kind} SAN ${JSON.stringify(v)} must be non-empty ASCII without spaces`);
  return v;
}

/** GeneralNames in the order DNS, IP, URI, email; undefined when there are none. */
export function encodeSubjectAltNames(sans: Partial<SubjectAltNames> | undefined): Buffer | undefined {
  if (!sans) return undefined;
  const parts: Buffer[] = [];
  for (const d of sans.dns ?? []) parts.push(derAscii(0x82, checkSanText('DNS', d)));
  for (const ip of sans.ip ?? []) parts.push(primitive(0x87, ipToBytes(ip)));
  for (const u of sans.uri ?? []) {
    if (!/^[A-Za-z][A-Za-z0-9+.-]*:/.test(checkSanText('URI', u))) throw invalid(`URI SAN "${u}" has no scheme`);
    parts.push(derAscii(0x86, u));
  }
  for (const e of sans.email ?? []) {
    if (!checkSanText('email', e).includes('@')) throw invalid(`email SAN "${e}" has no "@"`);
    parts.push(derAscii(0x81, e));
  }
  return parts.length ? encode(seq(...parts)) : undefined;
}

/**
 * GeneralNames → SubjectAltNames. Kinds SubjectAltNames cannot hold (otherName, directoryName, registeredID...) are refused
 * when `others` is 'refuse' (a CSR asks for them: better to say no than to drop them quietly), skipped when 'skip'.
 */
export function decodeSubjectAltNames(value: Buffer, context: string, others: 'refuse' | 'skip'): SubjectAltNames {
  const r = new DerReader(value, 0, value.length, `${context}: subjectAltName`);
  const s = r.sequence('GeneralNames');
  r.finish('GeneralNames');
  if (s.atEnd) throw r.fail('GeneralNames must hold at least one name');
  const out = emptySans();
  readGeneralNames(s, others, out);
  return out;
}

/** Reads the GeneralName elements left in `s` into `out`; kinds SubjectAltNames has no place for are checked, then refused or skipped. */
export function readGeneralNames(s: DerReader, others: 'refuse' | 'skip', out: SubjectAltNames): void {
  let i = 0;
  while (!s.atEnd) {
    i++;
    const what = `GeneralName ${i}`;
    const t = s.any(what);
    const b = s.buf;
    const ascii = (kind: string): string => {
      if (t.end === t.body) throw s.fail(`${what}: empty ${kind}`);
      for (let p = t.body; p < t.end; p++) if (b[p] > 0x7e || b[p] < 0x20) throw s.fail(`${what}: ${kind} holds a byte (0x${b[p].toString(16)}) outside printable ASCII`);
      return b.toString('latin1', t.body, t.end);
    };
    switch (t.tag) {
      case 0x81:
        out.email.push(ascii('rfc822Name'));
        break;
      case 0x82:
        out.dns.push(ascii('dNSName'));
        break;
      case 0x86:
        out.uri.push(ascii('uniformResourceIdentifier'));
        break;
      case 0x87: {
        const len = t.end - t.body;
        if (len !== 4 && len !== 16) throw s.fail(`${what}: iPAddress must be 4 or 16 bytes, has ${len}`);
        out.ip.push(bytesToIp(b.subarray(t.body, t.end)));
        break;
      }
      case 0xa0:
      case 0xa4:
      case 0x88: {
        const kind = t.tag === 0xa0 ? 'otherName' : t.tag === 0xa4 ? 'directoryName' : 'registeredID';
        if (others === 'refuse') throw s.fail(`${what}: ${kind} names are not supported (only DNS, IP, URI and email)`);
        // Skipped, but only once known to be well-formed.
        if (t.tag === 0x88) {
          s.oidOf(t, `${what} registeredID`);
        } else if (t.tag === 0xa0) {
          const o = s.inside(t);
          o.oid(`${what} otherName type-id`);
          const v = o.read(0xa0, `${what} otherName value`);
          o.finish(`${what} otherName`);
          const inner = o.inside(v);
          inner.wellFormed(inner.any(`${what} otherName value`), `${what} otherName value`);
          inner.finish(`${what} otherName value`);
        } else {
          const d = s.inside(t);
          readName(d, `${what} directoryName`);
          d.finish(`${what} directoryName`);
        }
        break;
      }
      case 0xa3:
      case 0xa5:
        throw s.fail(`${what}: ${t.tag === 0xa3 ? 'x400Address' : 'ediPartyName'} names are not supported`);
      default:
        throw s.fail(`${what}: ${describeTag(t.tag)} is not a GeneralName`);
    }
  }
}

function checkImplicitInteger(r: DerReader, t: { start: number; body: number; end: number }): void {
  const len = t.end - t.body;
  const b = r.buf;
  if (len === 0) throw r.fail('authorityCertSerialNumber is empty');
  if (len > 1 && ((b[t.body] === 0 && !(b[t.body + 1] & 0x80)) || (b[t.body] === 0xff && b[t.body + 1] & 0x80))) {
    throw r.fail('authorityCertSerialNumber: non-minimal INTEGER encoding');
  }
}

// ---- key identifiers ----

export function encodeSubjectKeyId(keyId: Buffer): Buffer {
  return derOctetString(keyId);
}

export function decodeSubjectKeyId(value: Buffer, context: string): Buffer {
  const r = new DerReader(value, 0, value.length, `${context}: subjectKeyIdentifier`);
  const id = r.octetString('SubjectKeyIdentifier');
  r.finish('SubjectKeyIdentifier');
  if (id.length === 0) throw r.fail('SubjectKeyIdentifier is empty');
  return id;
}

export function encodeAuthorityKeyId(keyId: Buffer): Buffer {
  return encode(seq(primitive(0x80, keyId)));
}

/** The keyIdentifier of an AKI, if it has one; authorityCertIssuer and serial are checked for shape and otherwise ignored. */
export function decodeAuthorityKeyId(value: Buffer, context: string): Buffer | undefined {
  const r = new DerReader(value, 0, value.length, `${context}: authorityKeyIdentifier`);
  const s = r.sequence('AuthorityKeyIdentifier');
  r.finish('AuthorityKeyIdentifier');
  const id = s.optional(0x80, 'keyIdentifier');
  const issuer = s.optional(0xa1, 'authorityCertIssuer');
  const serial = s.optional(0x82, 'authorityCertSerialNumber');
  s.finish('AuthorityKeyIdentifier');
  if ((issuer === undefined) !== (serial === undefined)) throw r.fail('authorityCertIssuer and authorityCertSerialNumber must come together');
  if (issuer) {
    const names = s.inside(issuer);
    if (names.atEnd) throw r.fail('authorityCertIssuer must hold at least one name');
    readGeneralNames(names, 'skip', emptySans());
  }
  if (serial) checkImplicitInteger(r, serial);
  if (id && id.end === id.body) throw r.fail('keyIdentifier is empty');
  return id ? s.contents(id) : undefined;
}

