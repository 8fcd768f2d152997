// Certificate signing requests (PKCS#10): read strictly and verified before anyone looks at them; built for node agents and tests.
import { TrustplaneError, invalid } from '../util/errors.js';
import { type Der, DerReader, Tag, derBitString, derOid, derSmallInt, encode, node, seq } from './der.js';
import {
  decodeBasicConstraints,
  decodeExtKeyUsage,
  decodeKeyUsage,
  decodeSubjectAltNames,
  emptySans,
  encodeExtension,
  encodeSubjectAltNames,
  readExtensions,
} from './extensions.js';
import {
  type PublicKeyInfo,
  type SignatureAlgorithm,
  checkSignatureKeyPair,
  importPublicKey,
  parsePublicKeyInfo,
  readPublicKeyInfo,
  readSignatureAlgorithm,
  signatureAlgorithmFor,
  verifySignatureAsync,
  verifyWithKey,
} from './keys.js';
import { encodeName, readName } from './name.js';
import { OID } from './oids.js';
import { looksLikePem, pemDecode } from './pem.js';
import type { Extension, Name, ParsedCsr, Signer, SubjectAltNames } from './types.js';

/** Larger CSRs (DER) are refused before any parsing. */
export const MAX_CSR_BYTES = 64 * 1024;
/**
 * PEM text longer than this is refused before it is decoded: twice the DER limit, well above the ~89 KiB that a CSR of
 * MAX_CSR_BYTES takes as base64 in 64-character lines with its headers, so a CSR within the limit is never refused for
 * its text.
 */
export const MAX_CSR_PEM_CHARS = 2 * MAX_CSR_BYTES;

const LABELS = ['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST'] as const;
const CONTEXT = 'certificate request';

/** A CSR taken apart, its signature not yet checked. */
export interface DecodedCsr extends ParsedCsr {
  subjectDer: Buffer;
  signatureAlgorithmOid: string;
  /** CertificationRequestInfo, DER: what the signature covers. */
  info: Buffer;
  signatureAlgorithm: SignatureAlgorithm;
  signature: Buffer;
  publicKeyInfo: PublicKeyInfo;
}

/** The limit is on the DER: the size reported is the DER's, whatever form the CSR came in. */
function tooLarge(derBytes: number): TrustplaneError {
  return new TrustplaneError(
    'RequestEntityTooLarge',
    `certificate request of ${derBytes} bytes (DER) is too large (at most ${MAX_CSR_BYTES} bytes)`,
    'send one PEM or DER CSR; a CSR that large holds far more than a key, a subject and a few names',
  );
}

function pemTooLarge(chars: number): TrustplaneError {
  return new TrustplaneError(
    'RequestEntityTooLarge',
    `certificate request PEM text of ${chars} characters is too large to hold a CSR within the limit (at most ${MAX_CSR_BYTES} bytes of DER, ${MAX_CSR_PEM_CHARS} characters of PEM)`,
    'send one PEM block, without other text around it',
  );
}

function pemCsrDer(text: string): Buffer {
  if (text.length > MAX_CSR_PEM_CHARS) throw pemTooLarge(text.length);
  const der = pemDecode(text, LABELS);
  if (der.length > MAX_CSR_BYTES) throw tooLarge(der.length);
  return der;
}

function csrDer(input: Buffer | string): Buffer {
  if (typeof input === 'string') return pemCsrDer(input);
  if (!Buffer.isBuffer(input)) throw invalid('a certificate request must be PEM text or DER bytes');
  if (input.length === 0) throw invalid('certificate request is empty');
  if (looksLikePem(input)) {
    if (input.length > MAX_CSR_PEM_CHARS) throw pemTooLarge(input.length);
    return pemCsrDer(input.toString('latin1'));
  }
  if (input.length > MAX_CSR_BYTES) throw tooLarge(input.length);
  // An own copy: the parsed fields are views into it, and the caller may reuse its buffer.
  return Buffer.from(input);
}

/** Reads the attributes of a CertificationRequestInfo, returning the requested extensions (the only attribute trustplane uses). */
function readAttributes(cri: DerReader): Extension[] {
  const set = cri.inside(cri.read(0xa0, 'attributes'));
  let extensions: Extension[] | undefined;
  let prev: Buffer | undefined;
  let n = 0;
  while (!set.atEnd) {
    n++;
    const at = set.read(Tag.SEQUENCE, `attribute ${n}`);
    const enc = set.bytes(at);
    if (prev && Buffer.compare(prev, enc) > 0) throw set.fail(`attribute ${n}: attributes are not in DER SET OF order`);
    prev = enc;
    const a = set.inside(at);
    const oid = a.oid(`attribute ${n} type`);
    const values = a.inside(a.read(Tag.SET, `attribute ${oid} values`));
    a.finish(`attribute ${oid}`);
    if (values.atEnd) throw set.fail(`attribute ${oid} has no value`);
    if (oid === OID.extensionRequest) {
      if (extensions) throw set.fail('extensionRequest attribute appears twice');
      // Some Java and Windows tools send an empty list; it asks for nothing, so it is read as nothing.
      extensions = readExtensions(values, 'extensionRequest', true);
      values.finish('extensionRequest (exactly one value)');
    } else {
      // Other attributes (challengePassword...) mean nothing here; they only have to be well-formed and ordered.
      let prevValue: Buffer | undefined;
      while (!values.atEnd) {
        const vt = values.any(`attribute ${oid} value`);
        values.wellFormed(vt, `attribute ${oid} value`);
        const v = values.bytes(vt);
        if (prevValue && Buffer.compare(prevValue, v) > 0) throw set.fail(`attribute ${oid}: values are not in DER SET OF order`);
        prevValue = v;
      }
    }
  }
  return extensions ?? [];
}

/** Takes a CSR apart without checking its signature: for tests and tools only; everything else uses parseCsr. */
export function decodeCsr(input: Buffer | string): DecodedCsr {
  const der = csrDer(input);
  const r = DerReader.over(der, CONTEXT);
  const outer = r.sequence('CertificationRequest');
  r.finish('CertificationRequest');
  const infoT = outer.read(Tag.SEQUENCE, 'certificationRequestInfo');
  const signatureAlgorithm = readSignatureAlgorithm(outer, 'signatureAlgorithm');
  const signature = outer.octetAlignedBits('signature');
  outer.finish('CertificationRequest');

  const cri = outer.inside(infoT);
  const version = cri.smallInt('version', 0xff);
  if (version !== 0) throw cri.fail(`version must be 0 (v1), is ${version}`);
  const { name: subject, der: subjectDer } = readName(cri, 'subject');
  const publicKeyInfo = readPublicKeyInfo(cri, 'subjectPKInfo');
  const extensions = readAttributes(cri);
  cri.finish('certificationRequestInfo');

  const csr: DecodedCsr = {
    der,
    subject,
    subjectDer,
    publicKey: publicKeyInfo.der,
    keyAlgorithm: publicKeyInfo.algorithm,
    extensions,
    sans: emptySans(),
    signatureAlgorithmOid: signatureAlgorithm.oid,
    info: outer.bytes(infoT),
    signatureAlgorithm,
    signature,
    publicKeyInfo,
  };
  for (const e of extensions) {
    switch (e.oid) {
      case OID.subjectAltName:
        csr.sans = decodeSubjectAltNames(e.value, CONTEXT, 'refuse');
        break;
      case OID.basicConstraints:
        csr.requestedBasicConstraints = decodeBasicConstraints(e.value, CONTEXT);
        break;
      case OID.keyUsage:
        csr.requestedKeyUsage = decodeKeyUsage(e.value, CONTEXT);
        break;
      case OID.extKeyUsage:
        csr.requestedExtKeyUsage = decodeExtKeyUsage(e.value, CONTEXT).usages;
        break;
    }
  }
  checkSignatureKeyPair(publicKeyInfo, signatureAlgorithm);
  return csr;
}

/** The public fields only: the rest would be dead weight when a ParsedCsr is posted between threads. */
function strip(d: DecodedCsr): ParsedCsr {
  const p: ParsedCsr = {
    der: d.der,
    subject: d.subject,
    subjectDer: d.subjectDer,
    publicKey: d.publicKey,
    keyAlgorithm: d.keyAlgorithm,
    extensions: d.extensions,
    sans: d.sans,
    signatureAlgorithmOid: d.signatureAlgorithmOid,
  };
  if (d.requestedBasicConstraints) p.requestedBasicConstraints = d.requestedBasicConstraints;
  if (d.requestedKeyUsage) p.requestedKeyUsage = d.requestedKeyUsage;
  if (d.requestedExtKeyUsage) p.requestedExtKeyUsage = d.requestedExtKeyUsage;
  return p;
}

function badSignature(): TrustplaneError {
  return invalid(`${CONTEXT}: signature does not verify with the request's own public key`, 'the CSR was altered, or signed with another key');
}

/** PEM or DER → a CSR whose signature has been verified with its own key. Anything malformed, weak or unsupported is refused. */
export function parseCsr(input: Buffer | string): ParsedCsr {
  const d = decodeCsr(input);
  if (!verifyWithKey(importPublicKey(d.publicKeyInfo), d.signatureAlgorithm, d.info, d.signature)) throw badSignature();
  return strip(d);
}

/** parseCsr, with EC keys imported through WebCrypto's raw form, which is cheaper but async in Node 20. */
export async function parseCsrAsync(input: Buffer | string): Promise<ParsedCsr> {
  const d = decodeCsr(input);
  if (!(await verifySignatureAsync(d.publicKeyInfo, d.signatureAlgorithm, d.info, d.signature))) throw badSignature();
  return strip(d);
}

export interface CsrRequest {
  subject: Name;
  sans?: Partial<SubjectAltNames>;
  /** More extensions to request, written after the SAN in the order given. */
  extensions?: Extension[];
  signer: Signer;
}

/** A DER CSR signed by `signer`, requesting the given SANs and extensions. */
export async function buildCsr(req: CsrRequest): Promise<Buffer> {
  const { signer } = req;
  const key = parsePublicKeyInfo(signer.publicKey);
  const alg = signatureAlgorithmFor(key.algorithm);
  const subjectDer = encodeName(req.subject);
  const exts: Der[] = [];
  const seen = new Set<string>();
  const san = encodeSubjectAltNames(req.sans);
  if (san) {
    exts.push(encodeExtension(OID.subjectAltName, req.subject.length === 0, san));
    seen.add(OID.subjectAltName);
  }
  for (const e of req.extensions ?? []) {
    if (seen.has(e.oid)) throw invalid(`extension ${e.oid} is requested twice`);
    seen.add(e.oid);
    exts.push(encodeExtension(e.oid, e.critical, e.value));
  }
  const attributes = exts.length ? node(0xa0, seq(derOid(OID.extensionRequest), node(Tag.SET, seq(...exts)))) : Buffer.from([0xa0, 0x00]);
  const info = encode(seq(derSmallInt(0), subjectDer, key.der, attributes));
  const signature = await signer.sign(info);
  return encode(seq(info, alg.der, derBitString(signature)));
}
