// PEM framing and distinguished names: exactly one block, strict base64; names encoded as UTF8String and shown like OpenSSL.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DerReader, Tag, encode, primitive, seq, node, derOid } from '../../src/pki/der.js';
import { commonName, decodeName, encodeName, formatName, organizations, pemDecode, pemDecodeAll, pemEncode, sameName } from '../../src/pki/index.js';
import { OID } from '../../src/pki/oids.js';
import type { Name } from '../../src/pki/types.js';
import { refuses } from './helpers.js';

const DER = Buffer.from(Array.from({ length: 200 }, (_, i) => (i * 37) & 0xff));

test('pemEncode wraps at 64 columns and pemDecode reads it back', () => {
  const pem = pemEncode('CERTIFICATE', DER);
  const lines = pem.trimEnd().split('\n');
  assert.equal(lines[0], '-----BEGIN CERTIFICATE-----');
  assert.equal(lines.at(-1), '-----END CERTIFICATE-----');
  assert.ok(lines.slice(1, -1).every((l) => l.length <= 64));
  assert.equal(lines[1].length, 64);
  assert.deepEqual(pemDecode(pem, 'CERTIFICATE'), DER);
  // CRLF line ends and explanatory text around the block are fine (RFC 7468).
  assert.deepEqual(pemDecode(`subject=CN = x\r\n${pem.replace(/\n/g, '\r\n')}trailer\n`, 'CERTIFICATE'), DER);
  assert.deepEqual(pemDecode(pem, ['CERTIFICATE REQUEST', 'CERTIFICATE']), DER);
});

test('pemDecode refuses zero blocks, several blocks, another label, bad base64 and a missing END', () => {
  const pem = pemEncode('CERTIFICATE', DER);
  refuses(() => pemDecode('hello', 'CERTIFICATE'), /no PEM block found; expected one "-----BEGIN CERTIFICATE-----" block/);
  refuses(() => pemDecode('', 'CERTIFICATE'), /no PEM block found/);
  refuses(() => pemDecode(pem + pem, 'CERTIFICATE'), /found 2 PEM blocks; expected exactly one "CERTIFICATE" block/);
  refuses(() => pemDecode(pemEncode('PRIVATE KEY', DER), 'CERTIFICATE'), /PEM block is labelled "PRIVATE KEY", expected "CERTIFICATE"/);
  const body = pem.split('\n')[1];
  refuses(() => pemDecode(pem.replace(body, `*${body.slice(1)}`), 'CERTIFICATE'), /PEM block "CERTIFICATE" is not valid base64/);
  refuses(() => pemDecode(pem.replace('-----END CERTIFICATE-----', ''), 'CERTIFICATE'), /has no matching "-----END CERTIFICATE-----" line/);
  refuses(() => pemDecode(pem.replace('END CERTIFICATE', 'END X509 CRL'), 'CERTIFICATE'), /no matching "-----END CERTIFICATE-----"/);
  refuses(() => pemDecode('-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n', 'CERTIFICATE'), /PEM block "CERTIFICATE" is empty/);
  // Dropping one base64 character leaves a length that is not a multiple of 4.
  refuses(() => pemDecode(pem.replace(body, body.slice(1)), 'CERTIFICATE'), /not valid base64/);
  // "QQ==" is "A"; "QR==" decodes to the same byte with stray bits, which only a lax decoder accepts.
  refuses(() => pemDecode('-----BEGIN X-----\nQR==\n-----END X-----\n', 'X'), /is not valid base64/);
  assert.deepEqual(pemDecode('-----BEGIN X-----\nQQ==\n-----END X-----\n', 'X'), Buffer.from('A'));
  assert.deepEqual(pemDecode('-----BEGIN X-----\nQUE=\n-----END X-----\n', 'X'), Buffer.from('AA'));
  refuses(() => pemDecode('-----BEGIN X-----\nQUF=\n-----END X-----\n', 'X'), /is not valid base64/);
  refuses(() => pemDecode('-----BEGIN X-----\nQQ==QQ==\n-----END X-----\n', 'X'), /is not valid base64/);
  refuses(() => pemDecode('-----BEGIN X-----\nQQ===\n-----END X-----\n', 'X'), /is not valid base64/);
});

test('pemDecodeAll reads a bundle and checks every label', () => {
  const a = pemEncode('CERTIFICATE', DER);
  const b = pemEncode('CERTIFICATE', DER.subarray(0, 10));
  assert.deepEqual(pemDecodeAll(a + b, 'CERTIFICATE'), [DER, DER.subarray(0, 10)]);
  refuses(() => pemDecodeAll(a + pemEncode('PRIVATE KEY', DER), 'CERTIFICATE'), /labelled "PRIVATE KEY"/);
  refuses(() => pemDecodeAll('', 'CERTIFICATE'), /no PEM block found/);
});

test('names: round trip in order, UTF8String for new values, PrintableString for C and serialNumber', () => {
  const name: Name = [
    { type: 'C', value: 'DE' },
    { type: 'ST', value: 'Bayern' },
    { type: 'L', value: 'München' },
    { type: 'O', value: 'system:nodes' },
    { type: 'O', value: 'second org' },
    { type: 'OU', value: 'ops' },
    { type: 'serialNumber', value: '12345' },
    { type: 'CN', value: 'system:node:worker-1 ✓' },
    { type: '1.2.3.4.5', value: 'private attribute' },
  ];
  const der = encodeName(name);
  assert.deepEqual(decodeName(der), name);
  // Walk the DER to check each value's string type.
  const r = DerReader.over(der, 'name');
  const rdns = r.sequence('name');
  const tags: number[] = [];
  while (!rdns.atEnd) {
    const atv = rdns.inside(rdns.read(Tag.SET, 'rdn')).sequence('atv');
    atv.oid('type');
    tags.push(atv.any('value').tag);
  }
  assert.deepEqual(tags, [Tag.PRINTABLE_STRING, Tag.UTF8_STRING, Tag.UTF8_STRING, Tag.UTF8_STRING, Tag.UTF8_STRING, Tag.UTF8_STRING, Tag.PRINTABLE_STRING, Tag.UTF8_STRING, Tag.UTF8_STRING]);
  assert.deepEqual(encodeName([]), Buffer.from([0x30, 0x00]));
  assert.deepEqual(decodeName(Buffer.from([0x30, 0x00])), []);
});

test('names: bad types and values are refused with what was wrong', () => {
  refuses(() => encodeName([{ type: 'CommonName', value: 'x' }]), /name attribute type "CommonName" is not known/);
  refuses(() => encodeName([{ type: 'CN', value: '' }]), /name attribute CN has an empty value/);
  refuses(() => encodeName([{ type: 'C', value: 'DEU' }]), /name attribute C "DEU" must be a two-letter country code/);
  refuses(() => encodeName([{ type: 'C', value: 'D@' }]), /may hold only PrintableString characters/);
  refuses(() => encodeName([{ type: 'CN', value: 'a\nb' }]), /contains a control character/);
  refuses(() => encodeName([{ type: 'CN', value: 'a\ud800b' }]), /is not valid Unicode/);
});

test('names: PrintableString, IA5String, BMPString and TeletexString values are read; multi-valued RDNs refused', () => {
  const atv = (oid: string, tag: number, bytes: Buffer) => seq(derOid(oid), primitive(tag, bytes));
  const der = encode(
    seq(
      node(Tag.SET, atv(OID.commonName, Tag.PRINTABLE_STRING, Buffer.from('host'))),
      node(Tag.SET, atv(OID.organizationName, Tag.BMP_STRING, Buffer.from([0, 0x41, 0, 0x42]))),
      node(Tag.SET, atv(OID.emailAddress, Tag.IA5_STRING, Buffer.from('a@b.c'))),
      node(Tag.SET, atv(OID.organizationalUnitName, Tag.TELETEX_STRING, Buffer.from('T61'))),
    ),
  );
  const name = decodeName(der);
  assert.deepEqual(name, [
    { type: 'CN', value: 'host' },
    { type: 'O', value: 'AB' },
    { type: OID.emailAddress, value: 'a@b.c' },
    { type: 'OU', value: 'T61' },
  ]);
  // Re-encoding a decoded name repeats its bytes exactly (issuer names must match byte for byte)...
  assert.deepEqual(encodeName(name), der);
  // ...until it is changed, when it is encoded afresh.
  name[0] = { type: 'CN', value: 'other' };
  assert.notDeepEqual(encodeName(name), der);
  assert.deepEqual(decodeName(encodeName(name))[0], { type: 'CN', value: 'other' });

  const multi = encode(seq(node(Tag.SET, atv(OID.commonName, Tag.UTF8_STRING, Buffer.from('a')), atv(OID.organizationName, Tag.UTF8_STRING, Buffer.from('b')))));
  refuses(() => decodeName(multi), /name RDN 1: multi-valued RDNs .* are not supported/);
  refuses(() => decodeName(encode(seq(node(Tag.SET)))), /name RDN 1 attribute is missing/);
  refuses(() => decodeName(encode(seq(node(Tag.SET, atv(OID.commonName, Tag.OCTET_STRING, Buffer.from('a')))))), /name RDN 1 CN value: expected a string but found OCTET STRING/);
});

test('commonName, organizations, formatName, sameName', () => {
  const name: Name = [
    { type: 'O', value: 'system:nodes' },
    { type: 'O', value: 'b, c' },
    { type: 'CN', value: 'system:node:n1' },
    { type: OID.emailAddress, value: 'x@y' },
    { type: '1.2.3', value: ' lead+trail ' },
  ];
  assert.equal(commonName(name), 'system:node:n1');
  assert.equal(commonName([{ type: 'O', value: 'x' }]), undefined);
  refuses(() => commonName([{ type: 'CN', value: 'a' }, { type: 'CN', value: 'b' }]), /has several CN attributes/);
  assert.deepEqual(organizations(name), ['system:nodes', 'b, c']);
  assert.equal(formatName(name), 'O=system:nodes, O=b\\, c, CN=system:node:n1, emailAddress=x@y, 1.2.3=\\ lead\\+trail\\ ');
  assert.equal(formatName([]), '');
  const a = { name: [{ type: 'CN', value: 'My  CA' }], der: encodeName([{ type: 'CN', value: 'My  CA' }]) };
  const b = { name: [{ type: 'CN', value: 'my ca' }], der: encodeName([{ type: 'CN', value: 'my ca' }]) };
  const c = { name: [{ type: 'O', value: 'my ca' }], der: encodeName([{ type: 'O', value: 'my ca' }]) };
  assert.equal(sameName(a, b), true);
  assert.equal(sameName(a, c), false);
  assert.equal(sameName(a, { name: [], der: Buffer.from([0x30, 0]) }), false);
});
