// The PKI core's public API: DER-level building blocks stay internal; these are what the rest of trustplane uses.
export type * from './types.js';
export { pemDecode, pemDecodeAll, pemEncode } from './pem.js';
export { encodeName, decodeName, commonName, organizations, formatName, sameName } from './name.js';
export {
  keyAlgorithmOf,
  parsePublicKeyInfo,
  signatureAlgorithmFor,
  signatureAlgorithmByOid,
  verifySignature,
  generateKeyPair,
  softSigner,
  algorithmOfKeyObject,
  describeAlgorithm,
  checkAlgorithm,
  RSA_MIN_BITS,
  RSA_MAX_BITS,
  type PublicKeyInfo,
  type SignatureAlgorithm,
} from './keys.js';
export { parseCsr, parseCsrAsync, buildCsr, MAX_CSR_BYTES, type CsrRequest } from './csr.js';
export { parseCertificate, parseCertificates } from './certificate.js';
export { buildCertificate, selfSignedCa, crossSign, issuerOf, keyIdOf, type Issuer, type SelfSignedCaRequest } from './builder.js';
export { verifyChain, type VerifyOptions } from './chain.js';
export { sha256Fingerprint, spkiPin } from './fingerprint.js';
export { OID, describeOid } from './oids.js';
export * from './node-identity.js';
export * from './signer-names.js';
