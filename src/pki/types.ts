// The shared vocabulary of the PKI core: key algorithms, names, templates and parsed objects.

/** Key algorithms trustplane accepts. RSA below 2048 or above 4096 bits, and everything else, is refused. */
export type KeyAlgorithm =
  | { kind: 'ec'; curve: 'P-256' | 'P-384' }
  | { kind: 'rsa'; bits: number }
  | { kind: 'ed25519' };

/** A distinguished name as an ordered list of single-attribute RDNs. `type` is a short name (CN, O, OU, C, L, ST, serialNumber) or a dotted OID. */
export type Name = Array<{ type: string; value: string }>;

export interface SubjectAltNames {
  dns: string[];
  ip: string[]; // textual IPv4 / IPv6
  uri: string[];
  email: string[];
}

export type KeyUsage =
  | 'digitalSignature'
  | 'nonRepudiation'
  | 'keyEncipherment'
  | 'dataEncipherment'
  | 'keyAgreement'
  | 'keyCertSign'
  | 'cRLSign';

export type ExtKeyUsage = 'serverAuth' | 'clientAuth' | 'codeSigning' | 'emailProtection' | 'timeStamping' | 'OCSPSigning';

/**
 * Something that can sign with a private key it never shows: a key in a KeyStore, or a node's local key.
 * `sign` returns the signature in the form X.509 carries (DER ECDSA-Sig-Value for EC; raw for RSA PKCS#1 v1.5 and Ed25519),
 * hashing with the algorithm's hash (SHA-256 for P-256 and RSA, SHA-384 for P-384; none for Ed25519).
 */
export interface Signer {
  readonly algorithm: KeyAlgorithm;
  /** SubjectPublicKeyInfo, DER. */
  readonly publicKey: Buffer;
  sign(data: Buffer): Promise<Buffer>;
}

export interface Extension {
  oid: string;
  critical: boolean;
  /** The extnValue OCTET STRING's contents, DER. */
  value: Buffer;
}

/** What a certificate is built from. Only the extensions named here are ever written. */
export interface CertificateTemplate {
  /** Positive serial, big-endian bytes; omitted → random 128-bit. */
  serial?: Buffer;
  subject: Name;
  notBefore: Date;
  notAfter: Date;
  /** The subject's public key, SPKI DER. */
  publicKey: Buffer;
  /** Basic constraints: present and critical on every certificate; cA true only for authorities. */
  isCA: boolean;
  pathLen?: number;
  keyUsage: KeyUsage[];
  extKeyUsage?: ExtKeyUsage[];
  sans?: Partial<SubjectAltNames>;
  /** The subject exactly as DER, written instead of encoding `subject` (cross-certificates repeat a CA's name byte for byte). */
  subjectDer?: Buffer;
  /** The subject key identifier to write; SHA-1 of the subject key (RFC 5280 method 1) when absent. */
  subjectKeyId?: Buffer;
}

export interface ParsedCsr {
  /** The whole CSR, DER. */
  der: Buffer;
  subject: Name;
  publicKey: Buffer; // SPKI DER
  keyAlgorithm: KeyAlgorithm;
  /** Extensions requested through the PKCS#9 extensionRequest attribute. */
  extensions: Extension[];
  sans: SubjectAltNames;
  /** Parsed from the requested extensions when present. */
  requestedBasicConstraints?: { isCA: boolean; pathLen?: number };
  /** Parsed from the requested extensions when present. */
  requestedKeyUsage?: KeyUsage[];
  /** The known usages among the requested extended key usages, when that extension is present. */
  requestedExtKeyUsage?: ExtKeyUsage[];
  /** The subject exactly as DER (always set by parseCsr; optional so hand-made values stay valid). */
  subjectDer?: Buffer;
  /** The algorithm the CSR was signed with (always set by parseCsr). */
  signatureAlgorithmOid?: string;
}

export interface ParsedCertificate {
  der: Buffer;
  serial: Buffer;
  /** Serial as lower-case hex without separators. */
  serialHex: string;
  issuer: Name;
  subject: Name;
  notBefore: Date;
  notAfter: Date;
  publicKey: Buffer; // SPKI DER
  keyAlgorithm: KeyAlgorithm;
  extensions: Extension[];
  isCA: boolean;
  pathLen?: number;
  keyUsage: KeyUsage[];
  extKeyUsage: ExtKeyUsage[];
  sans: SubjectAltNames;
  subjectKeyId?: Buffer;
  authorityKeyId?: Buffer;
  /** TBSCertificate, DER, and the signature over it, for chain verification. */
  tbs: Buffer;
  signatureAlgorithmOid: string;
  signature: Buffer;
  /** SHA-256 over the DER, lower-case hex. */
  sha256: string;
  /** 1 (no extensions) or 3. */
  version: 1 | 3;
  /** Subject and issuer exactly as DER, for name chaining. */
  subjectDer: Buffer;
  issuerDer: Buffer;
  /** Every extended key usage OID in order, including ones ExtKeyUsage has no name for (anyExtendedKeyUsage...). */
  extKeyUsageOids: string[];
}
