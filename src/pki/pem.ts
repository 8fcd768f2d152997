// PEM (RFC 7468) in and out: exactly one block with the expected label, and strict base64 inside it.
import { invalid } from '../util/errors.js';

const BEGIN = /-----BEGIN ([^-\r\n]*)-----/g;
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_VALUE = (() => {
  const v = new Int8Array(128).fill(-1);
  for (let i = 0; i < 64; i++) v[B64.charCodeAt(i)] = i;
  return v;
})();

/** Whitespace dropped; undefined unless what is left is canonical base64 (RFC 4648: padded, zero padding bits). */
function strictBase64(text: string, start: number, end: number): string | undefined {
  let out = '';
  let runStart = start;
  let pad = 0;
  let lastValue = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) {
      out += text.slice(runStart, i);
      runStart = i + 1;
      continue;
    }
    if (c === 0x3d) {
      pad++;
      continue;
    }
    if (pad || c > 127 || B64_VALUE[c] < 0) return undefined;
    lastValue = B64_VALUE[c];
  }
  out += text.slice(runStart, end);
  if (out.length % 4 !== 0 || pad > 2) return undefined;
  // Padding only at the very end, and the bits it leaves over must be zero (else two texts decode alike).
  if (pad && out.indexOf('=') !== out.length - pad) return undefined;
  if ((pad === 1 && lastValue & 0x03) || (pad === 2 && lastValue & 0x0f)) return undefined;
  return out;
}

interface Block {
  label: string;
  der: Buffer;
}

function labels(label: string | readonly string[]): readonly string[] {
  return typeof label === 'string' ? [label] : label;
}

function readBlocks(text: string): Block[] {
  const blocks: Block[] = [];
  BEGIN.lastIndex = 0;
  for (let m = BEGIN.exec(text); m; m = BEGIN.exec(text)) {
    const label = m[1];
    const endMarker = `-----END ${label}-----`;
    const bodyStart = m.index + m[0].length;
    const endAt = text.indexOf('-----', bodyStart);
    if (endAt < 0 || !text.startsWith(endMarker, endAt)) {
      throw invalid(`PEM block "${label}" has no matching "${endMarker}" line`);
    }
    const b64 = strictBase64(text, bodyStart, endAt);
    if (b64 === undefined) throw invalid(`PEM block "${label}" is not valid base64`);
    if (b64.length === 0) throw invalid(`PEM block "${label}" is empty`);
    const der = Buffer.from(b64, 'base64');
    blocks.push({ label, der });
    BEGIN.lastIndex = endAt + endMarker.length;
  }
  return blocks;
}

function expectLabel(block: Block, label: string | readonly string[]): void {
  const want = labels(label);
  if (!want.includes(block.label)) {
    throw invalid(`PEM block is labelled "${block.label}", expected "${want.join('" or "')}"`);
  }
}

/** The DER inside the one PEM block of `text`; zero blocks, several blocks, another label or bad base64 are refused. */
export function pemDecode(text: string, label: string | readonly string[]): Buffer {
  const blocks = readBlocks(text);
  const want = labels(label);
  if (blocks.length === 0) throw invalid(`no PEM block found; expected one "-----BEGIN ${want[0]}-----" block`);
  if (blocks.length > 1) throw invalid(`found ${blocks.length} PEM blocks; expected exactly one "${want[0]}" block`);
  expectLabel(blocks[0], label);
  return blocks[0].der;
}

/** Every block of a bundle (a trust bundle, a chain), each of which must carry `label`. */
export function pemDecodeAll(text: string, label: string | readonly string[]): Buffer[] {
  const blocks = readBlocks(text);
  if (blocks.length === 0) throw invalid(`no PEM block found; expected "-----BEGIN ${labels(label)[0]}-----" blocks`);
  for (const b of blocks) expectLabel(b, label);
  return blocks.map((b) => b.der);
}

export function pemEncode(label: string, der: Buffer): string {
  const b64 = der.toString('base64');
  let body = '';
  for (let i = 0; i < b64.length; i += 64) body += b64.slice(i, i + 64) + '\n';
  return `-----BEGIN ${label}-----\n${body}-----END ${label}-----\n`;
}

/** Whether an input given as bytes is PEM text rather than DER (DER of every object here starts with SEQUENCE, 0x30). */
export function looksLikePem(input: Buffer): boolean {
  for (let i = 0; i < input.length; i++) {
    const c = input[i];
    if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) continue;
    return c === 0x2d; // '-'
  }
  return false;
}
