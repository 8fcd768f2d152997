// Distinguished names: encoding trustplane's Name to DER, reading any conforming Name back, and showing it.
import { invalid } from '../util/errors.js';
import { type Der, DerReader, Tag, derAscii, derOid, derUtf8, encode, node, seq } from './der.js';
import { OID } from './oids.js';
import type { Name } from './types.js';

const SHORT_TO_OID: Record<string, string> = {
  CN: OID.commonName,
  O: OID.organizationName,
  OU: OID.organizationalUnitName,
  C: OID.countryName,
  L: OID.localityName,
  ST: OID.stateOrProvinceName,
  serialNumber: OID.serialNumber,
};
const OID_TO_SHORT: Record<string, string> = Object.fromEntries(Object.entries(SHORT_TO_OID).map(([k, v]) => [v, k]));

// Shown by formatName only, the way OpenSSL shows them; Name keeps the dotted form for these.
const DISPLAY_ONLY: Record<string, string> = {
  [OID.emailAddress]: 'emailAddress',
  [OID.domainComponent]: 'DC',
  [OID.userId]: 'UID',
  [OID.streetAddress]: 'street',
  [OID.title]: 'title',
  [OID.givenName]: 'GN',
  [OID.surname]: 'SN',
};

// X.520 and RFC 5280 fix these to PrintableString (C) and IA5String (emailAddress, DC); all else is UTF8String.
const PRINTABLE_TYPES = new Set<string>([OID.countryName, OID.serialNumber]);
const IA5_TYPES = new Set<string>([OID.emailAddress, OID.domainComponent]);
const PRINTABLE_CHARS = /^[A-Za-z0-9 '()+,\-./:=?]+$/;
const LONE_SURROGATE = /\p{Cs}/u;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

// The attribute-type OIDs of the short names, encoded once.
const TYPE_DER = new Map<string, Buffer>();

function typeDer(oid: string): Buffer {
  let d = TYPE_DER.get(oid);
  if (!d) {
    d = derOid(oid);
    if (OID_TO_SHORT[oid] || DISPLAY_ONLY[oid]) TYPE_DER.set(oid, d);
  }
  return d;
}

function oidOfType(type: string): string {
  const oid = SHORT_TO_OID[type];
  if (oid) return oid;
  if (/^[0-2](\.(0|[1-9][0-9]*))+$/.test(type)) return type;
  throw invalid(`name attribute type "${type}" is not known`, 'use CN, O, OU, C, L, ST, serialNumber or a dotted OID');
}

function encodeValue(oid: string, type: string, value: string): Buffer {
  if (typeof value !== 'string' || value.length === 0) throw invalid(`name attribute ${type} has an empty value`);
  if (LONE_SURROGATE.test(value)) throw invalid(`name attribute ${type} is not valid Unicode`);
  if (CONTROL.test(value)) throw invalid(`name attribute ${type} contains a control character`);
  if (PRINTABLE_TYPES.has(oid)) {
    if (!PRINTABLE_CHARS.test(value)) throw invalid(`name attribute ${type} "${value}" may hold only PrintableString characters (letters, digits, space and '()+,-./:=?)`);
    if (oid === OID.countryName && value.length !== 2) throw invalid(`name attribute C "${value}" must be a two-letter country code`);
    return derAscii(Tag.PRINTABLE_STRING, value);
  }
  if (IA5_TYPES.has(oid)) {
    if (!/^[\x20-\x7e]+$/.test(value)) throw invalid(`name attribute ${type} "${value}" may hold only ASCII characters`);
    return derAscii(Tag.IA5_STRING, value);
  }
  return derUtf8(value);
}

/** Names decoded from certificates remember their exact bytes, so that issuing under them repeats the issuer's bytes exactly. */
const ORIGINAL = new WeakMap<Name, { der: Buffer; snapshot: string[] }>();

/** A copy of a name's contents, to tell later whether the name was changed in place. */
export function snapshotOf(name: Name): string[] {
  const s: string[] = [];
  for (const a of name) s.push(a.type, a.value);
  return s;
}

export function unchanged(name: Name, snapshot: string[]): boolean {
  if (name.length * 2 !== snapshot.length) return false;
  for (let i = 0; i < name.length; i++) {
    if (name[i].type !== snapshot[2 * i] || name[i].value !== snapshot[2 * i + 1]) return false;
  }
  return true;
}

/** Name → DER (SEQUENCE OF single-attribute RDNs), in the order given. */
export function encodeName(name: Name): Buffer {
  const orig = ORIGINAL.get(name);
  if (orig && unchanged(name, orig.snapshot)) return orig.der;
  if (!Array.isArray(name)) throw invalid('a name must be a list of { type, value } attributes');
  const rdns: Der[] = [];
  for (const a of name) {
    if (!a || typeof a.type !== 'string') throw invalid('a name attribute must have a type and a value');
    const oid = oidOfType(a.type);
    rdns.push(node(Tag.SET, seq(typeDer(oid), encodeValue(oid, a.type, a.value))));
  }
  return encode(seq(...rdns));
}

/** Reads a Name from the reader's next element. Multi-valued RDNs are refused: Name cannot say them faithfully. */
export function readName(r: DerReader, what: string): { name: Name; der: Buffer } {
  const t = r.read(Tag.SEQUENCE, what);
  const rdns = r.inside(t);
  const name: Name = [];
  let i = 0;
  while (!rdns.atEnd) {
    const rdnWhat = `${what} RDN ${i + 1}`;
    const set = rdns.inside(rdns.read(Tag.SET, rdnWhat));
    const atv = set.sequence(`${rdnWhat} attribute`);
    if (!set.atEnd) {
      throw r.fail(`${rdnWhat}: multi-valued RDNs (several attributes joined with "+") are not supported`);
    }
    const oid = atv.oid(`${rdnWhat} attribute type`);
    const type = OID_TO_SHORT[oid] ?? oid;
    const value = atv.string(`${rdnWhat} ${type} value`);
    atv.finish(`${rdnWhat} attribute`);
    name.push({ type, value });
    i++;
  }
  const der = r.bytes(t);
  ORIGINAL.set(name, { der, snapshot: snapshotOf(name) });
  return { name, der };
}

/** DER Name → Name. */
export function decodeName(der: Buffer): Name {
  const r = DerReader.over(der, 'name');
  const { name } = readName(r, 'name');
  r.finish('name');
  return name;
}

/** The one CN of a name; undefined when there is none, refused when there are several (which one counts differs between tools). */
export function commonName(name: Name): string | undefined {
  let cn: string | undefined;
  for (const a of name) {
    if (a.type !== 'CN') continue;
    if (cn !== undefined) throw invalid(`name "${formatName(name)}" has several CN attributes`);
    cn = a.value;
  }
  return cn;
}

export function organizations(name: Name): string[] {
  return name.filter((a) => a.type === 'O').map((a) => a.value);
}

function escapeValue(v: string): string {
  let s = v.replace(/[\\,+"<>;=]/g, (c) => `\\${c}`);
  // eslint-disable-next-line no-control-regex
  s = s.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
  if (s.startsWith(' ') || s.startsWith('#')) s = `\\${s}`;
  if (s.endsWith(' ') && s.length > 1) s = `${s.slice(0, -1)}\\ `;
  return s;
}

/** "CN=x, O=y" in the order of the DER, like OpenSSL; separators inside values are escaped. */
export function formatName(name: Name): string {
  return name.map((a) => `${DISPLAY_ONLY[a.type] ?? a.type}=${escapeValue(a.value)}`).join(', ');
}

function normalize(v: string): string {
  return v.trim().replace(/\s+/g, ' ').toLowerCase();
}

/**
 * Whether two names are the same for chaining (RFC 5280 7.1, simplified): equal DER, or the same attribute types in the same
 * order with values equal after case folding and whitespace compression (which covers PrintableString vs UTF8String).
 */
export function sameName(a: { der: Buffer; name: Name }, b: { der: Buffer; name: Name }): boolean {
  if (a.der.equals(b.der)) return true;
  if (a.name.length !== b.name.length) return false;
  for (let i = 0; i < a.name.length; i++) {
    if (a.name[i].type !== b.name[i].type || normalize(a.name[i].value) !== normalize(b.name[i].value)) return false;
  }
  return true;
}
