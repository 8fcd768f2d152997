// TPM 2.0 structures the attestation needs (TPM2B_PUBLIC, names, TPMS_ATTEST, TPMT_SIGNATURE), read strictly from their big-endian wire form.
//
// Only what a verifier reads: an object's public area (to know its key, attributes and name) and a quote with its
// signature. Every length is checked; a structure with bytes left over is refused, so a parser never guesses.
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { invalid } from '../util/errors.js';

export const TPM_ALG = { RSA: 0x0001, SHA1: 0x0004, HMAC: 0x0005, AES: 0x0006, SHA256: 0x000b, SHA384: 0x000c, SHA512: 0x000d, NULL: 0x0010, RSASSA: 0x0014, RSAPSS: 0x0016, ECDSA: 0x0018, ECC: 0x0023, CFB: 0x0043 } as const;
export const TPM_GENERATED_VALUE = 0xff544347;
export const TPM_ST_ATTEST_QUOTE = 0x8018;

/** TPMA_OBJECT bits (TPM 2.0 part 2, 8.3). */
export const TPMA = {
  fixedTPM: 1 << 1,
  stClear: 1 << 2,
  fixedParent: 1 << 4,
  sensitiveDataOrigin: 1 << 5,
  userWithAuth: 1 << 6,
  adminWithPolicy: 1 << 7,
  noDA: 1 << 10,
  restricted: 1 << 16,
  decrypt: 1 << 17,
  sign: 1 << 18,
} as const;

const HASHES: Record<number, { name: string; size: number }> = {
  [TPM_ALG.SHA1]: { name: 'sha1', size: 20 },
  [TPM_ALG.SHA256]: { name: 'sha256', size: 32 },
  [TPM_ALG.SHA384]: { name: 'sha384', size: 48 },
  [TPM_ALG.SHA512]: { name: 'sha512', size: 64 },
};

/** The node:crypto name and digest size of a TPM hash algorithm; Invalid for one this verifier does not take. */
export function hashAlg(alg: number, what: string): { name: string; size: number } {
  const h = HASHES[alg];
  if (!h) throw invalid(`${what} uses hash algorithm 0x${alg.toString(16).padStart(4, '0')}, which is not SHA-1/256/384/512`);
  return h;
}

/** A cursor over a TPM structure: each read checks that the bytes are there. */
export class TpmReader {
  private pos = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly what: string,
  ) {}
  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw invalid(`${this.what} is truncated: ${n} more byte(s) needed at offset ${this.pos} of ${this.buf.length}`);
  }
  u8(): number {
    this.need(1);
    return this.buf[this.pos++];
  }
  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  u64(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }
  bytes(n: number): Buffer {
    this.need(n);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return Buffer.from(v);
  }
  /** A TPM2B: a 16-bit size, then that many bytes. */
  sized(): Buffer {
    return this.bytes(this.u16());
  }
  get offset(): number {
    return this.pos;
  }
  end(): void {
    if (this.pos !== this.buf.length) throw invalid(`${this.what} has ${this.buf.length - this.pos} byte(s) after its end`);
  }
}

/** A TPM2B: the 16-bit big-endian size, then the bytes. */
export function tpm2b(data: Buffer): Buffer {
  if (data.length > 0xffff) throw invalid('a TPM2B buffer holds at most 65535 bytes');
  const len = Buffer.alloc(2);
  len.writeUInt16BE(data.length);
  return Buffer.concat([len, data]);
}

export interface TpmPublic {
  type: 'rsa' | 'ecc';
  nameAlg: number;
  attributes: number;
  /** The TPMT_PUBLIC bytes the name is a digest of. */
  tpmtPublic: Buffer;
  /** nameAlg || H(TPMT_PUBLIC): what MakeCredential binds to and a quote names as its signer. */
  name: Buffer;
  /** The signing scheme the key is restricted to (TPM_ALG_NULL when none) and its hash. */
  scheme: number;
  schemeHash?: number;
  /** The symmetric algorithm of a storage key (an EK): TPM_ALG_NULL for a signing key. */
  symmetric: { algorithm: number; keyBits?: number; mode?: number };
  publicKey: KeyObject;
}

const CURVES: Record<number, { crv: string; size: number }> = { 0x0003: { crv: 'P-256', size: 32 }, 0x0004: { crv: 'P-384', size: 48 } };
const b64u = (b: Buffer) => b.toString('base64url');

/** Reads a TPM2B_PUBLIC (what `tpm2_createak -u` writes): the key, its attributes and its name. */
export function parseTpm2bPublic(buf: Buffer, what = 'the TPM2B_PUBLIC'): TpmPublic {
  const outer = new TpmReader(buf, what);
  const tpmtPublic = outer.sized();
  outer.end();
  const r = new TpmReader(tpmtPublic, what);
  const typeAlg = r.u16();
  const nameAlg = r.u16();
  const h = hashAlg(nameAlg, `${what}'s name algorithm`);
  const attributes = r.u32();
  r.sized(); // authPolicy
  const symAlg = r.u16();
  const symmetric = symAlg === TPM_ALG.NULL ? { algorithm: symAlg } : { algorithm: symAlg, keyBits: r.u16(), mode: r.u16() };
  const scheme = r.u16();
  const schemeHash = scheme === TPM_ALG.NULL ? undefined : r.u16();
  let publicKey: KeyObject;
  let type: TpmPublic['type'];
  if (typeAlg === TPM_ALG.RSA) {
    type = 'rsa';
    r.u16(); // keyBits: the modulus says it
    const exponent = r.u32() || 65537;
    const modulus = r.sized();
    if (modulus.length < 256) throw invalid(`${what} is an RSA key of ${modulus.length * 8} bits; at least 2048 are required`);
    const e = Buffer.alloc(4);
    e.writeUInt32BE(exponent);
    publicKey = createPublicKey({ key: { kty: 'RSA', n: b64u(modulus), e: b64u(e.subarray(e.findIndex((x) => x !== 0))) }, format: 'jwk' });
  } else if (typeAlg === TPM_ALG.ECC) {
    type = 'ecc';
    const curve = CURVES[r.u16()];
    if (!curve) throw invalid(`${what} is an ECC key on a curve other than NIST P-256 or P-384`);
    const kdf = r.u16();
    if (kdf !== TPM_ALG.NULL) r.u16();
    const x = r.sized();
    const y = r.sized();
    if (x.length !== curve.size || y.length !== curve.size) throw invalid(`${what}'s ECC point does not have ${curve.size}-byte coordinates`);
    publicKey = createPublicKey({ key: { kty: 'EC', crv: curve.crv, x: b64u(x), y: b64u(y) }, format: 'jwk' });
  } else throw invalid(`${what} has key type 0x${typeAlg.toString(16)}, neither RSA nor ECC`);
  r.end();
  const nameAlgBytes = Buffer.alloc(2);
  nameAlgBytes.writeUInt16BE(nameAlg);
  const name = Buffer.concat([nameAlgBytes, createHash(h.name).update(tpmtPublic).digest()]);
  return { type, nameAlg, attributes, tpmtPublic, name, scheme, ...(schemeHash !== undefined ? { schemeHash } : {}), symmetric, publicKey };
}

/** Why a key is not an attestation key a verifier may trust (fixedTPM, fixedParent, sensitiveDataOrigin, restricted, sign; not decrypt), or undefined. */
export function akAttributesProblem(attributes: number): string | undefined {
  const missing = (['fixedTPM', 'fixedParent', 'sensitiveDataOrigin', 'restricted', 'sign'] as const).filter((k) => !(attributes & TPMA[k]));
  const extra = attributes & TPMA.decrypt ? ['decrypt'] : [];
  if (!missing.length && !extra.length) return undefined;
  return `the attestation key's attributes ${missing.length ? `lack ${missing.join(', ')}` : ''}${missing.length && extra.length ? ' and ' : ''}${extra.length ? `include ${extra.join(', ')}` : ''}: it must be a restricted signing key created inside the TPM that can never leave it`;
}

export interface PcrSelection {
  hash: number;
  /** PCR indices, ascending. */
  pcrs: number[];
}

export interface QuoteAttest {
  magic: number;
  type: number;
  qualifiedSigner: Buffer;
  extraData: Buffer;
  clock: bigint;
  resetCount: number;
  restartCount: number;
  safe: boolean;
  firmwareVersion: bigint;
  pcrSelections: PcrSelection[];
  pcrDigest: Buffer;
}

/** Reads a TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE (what `tpm2_quote -m` writes); Invalid for anything else. */
export function parseQuoteAttest(buf: Buffer): QuoteAttest {
  const r = new TpmReader(buf, 'the quote (TPMS_ATTEST)');
  const magic = r.u32();
  if (magic !== TPM_GENERATED_VALUE) throw invalid(`the quote does not start with TPM_GENERATED_VALUE (0x${magic.toString(16)}): it was not made by a TPM`);
  const type = r.u16();
  if (type !== TPM_ST_ATTEST_QUOTE) throw invalid(`the attestation structure has type 0x${type.toString(16)}, not a quote (0x8018)`);
  const qualifiedSigner = r.sized();
  const extraData = r.sized();
  const clock = r.u64();
  const resetCount = r.u32();
  const restartCount = r.u32();
  const safe = r.u8() === 1;
  const firmwareVersion = r.u64();
  const count = r.u32();
  if (count > 16) throw invalid(`the quote selects ${count} PCR banks`);
  const pcrSelections: PcrSelection[] = [];
  for (let i = 0; i < count; i++) {
    const hash = r.u16();
    const bitmap = r.bytes(r.u8());
    const pcrs: number[] = [];
    bitmap.forEach((byte, j) => {
      for (let b = 0; b < 8; b++) if (byte & (1 << b)) pcrs.push(j * 8 + b);
    });
    pcrSelections.push({ hash, pcrs });
  }
  const pcrDigest = r.sized();
  r.end();
  return { magic, type, qualifiedSigner, extraData, clock, resetCount, restartCount, safe, firmwareVersion, pcrSelections, pcrDigest };
}

export interface TpmSignature {
  sigAlg: number;
  hash: number;
  /** RSA: the signature; ECDSA: DER-encoded (r, s), as node:crypto verifies it. */
  signature: Buffer;
  dsaEncoding?: 'ieee-p1363';
}

/** Reads a TPMT_SIGNATURE (what `tpm2_quote -s` writes): RSASSA, RSAPSS or ECDSA. */
export function parseSignature(buf: Buffer): TpmSignature {
  const r = new TpmReader(buf, 'the quote signature (TPMT_SIGNATURE)');
  const sigAlg = r.u16();
  const hash = r.u16();
  if (sigAlg === TPM_ALG.RSASSA || sigAlg === TPM_ALG.RSAPSS) {
    const signature = r.sized();
    r.end();
    return { sigAlg, hash, signature };
  }
  if (sigAlg === TPM_ALG.ECDSA) {
    const rr = r.sized();
    const s = r.sized();
    r.end();
    const size = Math.max(rr.length, s.length);
    const pad = (b: Buffer) => Buffer.concat([Buffer.alloc(size - b.length), b]);
    return { sigAlg, hash, signature: Buffer.concat([pad(rr), pad(s)]), dsaEncoding: 'ieee-p1363' };
  }
  throw invalid(`the quote signature uses scheme 0x${sigAlg.toString(16)}, not RSASSA, RSAPSS or ECDSA`);
}
