// The strict DER reader refuses each encoding DER forbids, naming the field; the writers produce what the reader accepts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DerReader, Tag, derOid, derSmallInt, derTime, derUnsigned, derUtf8, encode, node, primitive, seq } from '../../src/pki/der.js';
import { OID } from '../../src/pki/oids.js';
import { refuses } from './helpers.js';

const r = (bytes: number[] | Buffer) => DerReader.over(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes), 'test input');

test('lengths: indefinite, non-minimal, too many length bytes, past the end', () => {
  refuses(() => r([0x30, 0x80, 0x00, 0x00]).sequence('outer'), /test input: outer: indefinite length at byte 1 is not allowed in DER/);
  refuses(() => r([0x04, 0x81, 0x05, 1, 2, 3, 4, 5]).octetString('blob'), /blob: non-minimal length encoding at byte 1: 5 needs the short form/);
  refuses(() => r([0x04, 0x82, 0x00, 0x85, ...Buffer.alloc(0x85)]).octetString('blob'), /blob: non-minimal length encoding \(leading zero byte\)/);
  // A small length written in 4 bytes is non-minimal, and the message says so; a really large one is too large.
  refuses(() => r([0x04, 0x84, 0, 0, 0, 1, 0]).octetString('blob'), /blob: non-minimal length encoding \(4 length bytes with a leading zero byte\) at byte 1/);
  refuses(() => r([0x04, 0x84, 1, 0, 0, 0, 0]).octetString('blob'), /blob: a length of 4 length bytes at byte 1 is too large/);
  refuses(() => r([0x04, 0x05, 1, 2]).octetString('blob'), /blob: truncated: length 5 at byte 1 runs past the end/);
  refuses(() => r([0x04]).octetString('blob'), /blob: truncated: the length byte/);
  refuses(() => r([0x04, 0x82, 0x01]).octetString('blob'), /blob: truncated: 2 length bytes/);
  refuses(() => r([]).octetString('blob'), /blob is missing/);
  // A child may not run past its parent even when the input goes on.
  refuses(() => r([0x30, 0x02, 0x04, 0x03, 1, 2, 3]).sequence('outer').octetString('inner'), /inner: truncated: length 3 .* enclosing structure \(byte 4\)/);
  // The long form for exactly 128 and 256 bytes is accepted.
  assert.equal(r([0x04, 0x81, 0x80, ...Buffer.alloc(128)]).octetString('blob').length, 128);
  assert.equal(r([0x04, 0x82, 0x01, 0x00, ...Buffer.alloc(256)]).octetString('blob').length, 256);
});

test('tags: wrong tag names both, high-tag-number form and end-of-contents are refused', () => {
  refuses(() => r([0x02, 0x01, 0x00]).sequence('tbsCertificate'), /tbsCertificate: expected SEQUENCE \(0x30\) but found INTEGER \(0x02\) at byte 0/);
  refuses(() => r([0x24, 0x01, 0x00]).octetString('extnValue'), /extnValue: expected OCTET STRING \(0x04\) but found tag 0x24/);
  refuses(() => r([0x1f, 0x81, 0x00, 0x00]).any('field'), /field: high-tag-number form \(0x1f\)/);
  refuses(() => r([0xbf, 0x22, 0x00]).any('field'), /field: high-tag-number form/);
  refuses(() => r([0x00, 0x00]).any('field'), /field: end-of-contents marker/);
});

test('trailing bytes after the last element are refused', () => {
  const outer = r([0x30, 0x03, 0x02, 0x01, 0x05, 0x00]);
  const inner = outer.sequence('version holder');
  assert.equal(inner.smallInt('version', 10), 5);
  inner.finish('version holder');
  refuses(() => outer.finish('Certificate'), /Certificate: unexpected data \(1 bytes\) at byte 5/);
  const inner2 = r([0x30, 0x04, 0x02, 0x01, 0x05, 0x00]).sequence('holder');
  inner2.smallInt('v', 10);
  refuses(() => inner2.finish('holder'), /holder: unexpected data/);
});

test('INTEGER: non-minimal and empty encodings are refused, minimal ones read', () => {
  refuses(() => r([0x02, 0x02, 0x00, 0x7f]).integer('serialNumber'), /serialNumber: non-minimal INTEGER encoding/);
  refuses(() => r([0x02, 0x02, 0xff, 0x80]).integer('serialNumber'), /serialNumber: non-minimal INTEGER encoding/);
  refuses(() => r([0x02, 0x00]).integer('serialNumber'), /serialNumber: empty INTEGER/);
  assert.deepEqual([...r([0x02, 0x02, 0x00, 0x80]).integer('x')], [0x00, 0x80]);
  assert.deepEqual([...r([0x02, 0x02, 0xff, 0x7f]).integer('x')], [0xff, 0x7f]);
  refuses(() => r([0x02, 0x01, 0x80]).smallInt('pathLen', 10), /pathLen: must not be negative/);
  refuses(() => r([0x02, 0x01, 0x0b]).smallInt('pathLen', 10), /pathLen: 11 is larger than 10/);
});

test('BOOLEAN must be one byte, 0x00 or 0xff', () => {
  refuses(() => r([0x01, 0x01, 0x01]).boolean('critical'), /critical: BOOLEAN value 0x1 .* must be 0x00 or 0xff/);
  refuses(() => r([0x01, 0x02, 0xff, 0xff]).boolean('critical'), /critical: BOOLEAN .* must be one byte, not 2/);
  assert.equal(r([0x01, 0x01, 0xff]).boolean('c'), true);
  assert.equal(r([0x01, 0x01, 0x00]).boolean('c'), false);
});

test('BIT STRING: unused bits above 7, non-zero padding, unused bits on an empty string', () => {
  refuses(() => r([0x03, 0x02, 0x08, 0x00]).bitString('keyUsage'), /keyUsage: BIT STRING .* claims 8 unused bits \(at most 7\)/);
  refuses(() => r([0x03, 0x02, 0x01, 0x01]).bitString('keyUsage'), /keyUsage: BIT STRING .* has non-zero padding bits/);
  refuses(() => r([0x03, 0x01, 0x03]).bitString('keyUsage'), /keyUsage: empty BIT STRING .* claims 3 unused bits/);
  refuses(() => r([0x03, 0x00]).bitString('keyUsage'), /lacks its unused-bits octet/);
  refuses(() => r([0x03, 0x02, 0x01, 0x02]).octetAlignedBits('signature'), /signature: BIT STRING must have no unused bits, has 1/);
  assert.deepEqual(r([0x03, 0x02, 0x01, 0x06]).bitString('ku'), { unused: 1, bits: Buffer.from([0x06]) });
});

test('OBJECT IDENTIFIER: round trip of every known OID; non-minimal, truncated, empty refused', () => {
  for (const oid of Object.values(OID)) assert.equal(r(derOid(oid)).oid('oid'), oid);
  assert.equal(r(derOid('2.999.1')).oid('x'), '2.999.1');
  assert.equal(r(derOid('1.2.9007199254740991')).oid('x'), '1.2.9007199254740991');
  refuses(() => r([0x06, 0x03, 0x2a, 0x80, 0x01]).oid('extnID'), /extnID: non-minimal sub-identifier/);
  refuses(() => r([0x06, 0x02, 0x2a, 0x81]).oid('extnID'), /extnID: OBJECT IDENTIFIER .* ends inside a sub-identifier/);
  refuses(() => r([0x06, 0x00]).oid('extnID'), /extnID: empty OBJECT IDENTIFIER/);
  refuses(() => derOid('1.2.x'), /not a dotted object identifier/);
  refuses(() => derOid('1.40'), /not a valid object identifier/);
});

test('NULL must be empty', () => {
  refuses(() => r([0x05, 0x01, 0x00]).null('parameters'), /parameters: NULL .* must be empty/);
  r([0x05, 0x00]).null('parameters');
});

test('times: only YYMMDDHHMMSSZ / YYYYMMDDHHMMSSZ that name a real instant', () => {
  const ut = (s: string) => r(primitive(Tag.UTC_TIME, Buffer.from(s, 'latin1')));
  const gt = (s: string) => r(primitive(Tag.GENERALIZED_TIME, Buffer.from(s, 'latin1')));
  assert.equal(ut('260301120000Z').time('notBefore').toISOString(), '2026-03-01T12:00:00.000Z');
  assert.equal(ut('500101000000Z').time('notBefore').toISOString(), '1950-01-01T00:00:00.000Z');
  assert.equal(ut('491231235959Z').time('notBefore').toISOString(), '2049-12-31T23:59:59.000Z');
  assert.equal(gt('20500101000000Z').time('notAfter').toISOString(), '2050-01-01T00:00:00.000Z');
  assert.equal(ut('240229000000Z').time('t').toISOString(), '2024-02-29T00:00:00.000Z');
  refuses(() => ut('2603011200Z').time('notBefore'), /notBefore: UTCTime .* must be YYMMDDHHMMSSZ \(13 characters\), has 11/);
  refuses(() => ut('260301120000+0100').time('notBefore'), /notBefore: UTCTime .* has 17/);
  refuses(() => ut('26030112000aZ').time('notBefore'), /notBefore: time .* is not of the form YYMMDDHHMMSSZ/);
  refuses(() => ut('2603011200001').time('notBefore'), /is not of the form/);
  refuses(() => ut('250229000000Z').time('notBefore'), /notBefore: time .* is not a valid date/);
  refuses(() => ut('261301000000Z').time('notBefore'), /not a valid date/);
  refuses(() => ut('260301240000Z').time('notBefore'), /not a valid date/);
  refuses(() => ut('260301235960Z').time('notBefore'), /not a valid date/);
  refuses(() => gt('20500101000000.5Z').time('notAfter'), /GeneralizedTime .* must be YYYYMMDDHHMMSSZ \(15 characters\)/);
  refuses(() => gt('20491231235959Z').time('notAfter'), /notAfter: GeneralizedTime for 2049 .* dates before 2050 must be UTCTime/);
  refuses(() => gt('00801202000000Z').time('notAfter'), /GeneralizedTime for 80 .* must be UTCTime/);
  refuses(() => r([0x02, 0x01, 0x00]).time('notAfter'), /notAfter: expected UTCTime or GeneralizedTime but found INTEGER/);
});

test('derTime writes UTCTime for 1950–2049 and GeneralizedTime from 2050, dropping milliseconds', () => {
  assert.throws(() => derTime(new Date('1949-12-31T23:59:59Z')), RangeError);
  for (const iso of ['1950-01-01T00:00:00Z', '2026-07-04T05:06:07Z', '2049-12-31T23:59:59Z', '2050-01-01T00:00:00Z', '9999-12-31T23:59:59Z']) {
    const d = new Date(iso);
    const enc = derTime(d);
    const year = d.getUTCFullYear();
    assert.equal(enc[0], year >= 1950 && year < 2050 ? Tag.UTC_TIME : Tag.GENERALIZED_TIME, iso);
    assert.equal(r(enc).time('t').getTime(), d.getTime(), iso);
  }
  assert.equal(r(derTime(new Date('2026-01-01T00:00:00.999Z'))).time('t').toISOString(), '2026-01-01T00:00:00.000Z');
});

test('strings: each type checked against its alphabet', () => {
  const s = (tag: number, bytes: number[]) => r(primitive(tag, Buffer.from(bytes)));
  assert.equal(r(derUtf8('Grüße ✓ 𝄞')).string('CN'), 'Grüße ✓ 𝄞');
  refuses(() => s(Tag.UTF8_STRING, [0x66, 0xc3]).string('CN value'), /CN value: UTF8String .* is not valid UTF-8/);
  refuses(() => s(Tag.UTF8_STRING, [0xed, 0xa0, 0x80]).string('CN value'), /not valid UTF-8/);
  assert.equal(s(Tag.PRINTABLE_STRING, [...Buffer.from("Acme (EU) Ltd.-1:=?")]).string('O'), 'Acme (EU) Ltd.-1:=?');
  refuses(() => s(Tag.PRINTABLE_STRING, [...Buffer.from('a@b')]).string('O value'), /O value: PrintableString .* holds a character \(0x40\)/);
  refuses(() => s(Tag.IA5_STRING, [0x61, 0x80]).string('email'), /IA5String .* non-ASCII byte \(0x80\)/);
  assert.equal(s(Tag.BMP_STRING, [0x00, 0x41, 0x00, 0xe9]).string('CN'), 'Aé');
  refuses(() => s(Tag.BMP_STRING, [0x00, 0x41, 0x00]).string('CN'), /BMPString .* odd length/);
  refuses(() => s(Tag.BMP_STRING, [0xd8, 0x00]).string('CN'), /surrogate/);
  assert.equal(s(Tag.UNIVERSAL_STRING, [0, 1, 0xd1, 0x1e]).string('CN'), '𝄞');
  refuses(() => s(Tag.UNIVERSAL_STRING, [0, 0x11, 0, 0]).string('CN'), /invalid code point/);
  assert.equal(s(Tag.NUMERIC_STRING, [0x31, 0x20, 0x32]).string('x'), '1 2');
  refuses(() => s(Tag.NUMERIC_STRING, [0x41]).string('x'), /NumericString .* non-digit/);
  assert.equal(s(Tag.TELETEX_STRING, [0x41, 0xe9]).string('x'), 'Aé');
  refuses(() => s(Tag.OCTET_STRING, [0x41]).string('CN value'), /CN value: expected a string but found OCTET STRING/);
});

test('writers: lengths at each boundary and integers read back as written', () => {
  for (const n of [0, 1, 127, 128, 255, 256, 65535, 65536, 70000]) {
    const content = Buffer.alloc(n, 0x5a);
    const d = encode(seq(primitive(Tag.OCTET_STRING, content)));
    const got = r(d).sequence('s').octetString('o');
    assert.equal(got.length, n);
    const wrapped = encode(node(0xa3, seq(content.length ? primitive(Tag.OCTET_STRING, content) : Buffer.from([0x05, 0x00]))));
    const rr = r(wrapped);
    rr.inside(rr.read(0xa3, 'ext')).sequence('s');
    rr.finish('ext');
  }
  assert.deepEqual([...derUnsigned(Buffer.from([0x00, 0x00, 0x80]))], [0x02, 0x02, 0x00, 0x80]);
  assert.deepEqual([...derUnsigned(Buffer.from([0x7f]))], [0x02, 0x01, 0x7f]);
  assert.deepEqual([...derUnsigned(Buffer.from([0x00]))], [0x02, 0x01, 0x00]);
  for (const n of [0, 1, 127, 128, 255, 256, 0x7fffffff]) assert.equal(r(derSmallInt(n)).smallInt('n', 0x7fffffff), n);
});
