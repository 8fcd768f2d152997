// The reference reading of certificates and CSRs, through @peculiar/asn1-schema (tests only), in trustplane's shapes.
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  AuthorityKeyIdentifier,
  BasicConstraints,
  Certificate,
  ExtendedKeyUsage,
  Extensions,
  KeyUsage,
  type Name as AsnName,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
} from '@peculiar/asn1-x509';
import { CertificationRequest } from '@peculiar/asn1-csr';
import { OID } from '../../src/pki/oids.js';
import type { Extension, Name } from '../../src/pki/types.js';

const SHORT: Record<string, string> = {
  CN: OID.commonName,
  O: OID.organizationName,
  OU: OID.organizationalUnitName,
  C: OID.countryName,
  L: OID.localityName,
  ST: OID.stateOrProvinceName,
  serialNumber: OID.serialNumber,
};

/** Name with every type as a dotted OID, the form both sides can be compared in. */
export function dotted(name: Name): Array<{ type: string; value: string }> {
  return name.map((a) => ({ type: SHORT[a.type] ?? a.type, value: a.value }));
}

function asnName(n: AsnName): Array<{ type: string; value: string }> {
  return Array.from(n, (rdn) => {
    if (rdn.length !== 1) throw new Error('multi-valued RDN');
    const v = rdn[0].value;
    // @peculiar has no NumericString choice and keeps it as raw ANY; its digits are ASCII after a short header.
    if (v.anyValue && new Uint8Array(v.anyValue)[0] === 0x12) return { type: rdn[0].type, value: Buffer.from(v.anyValue).subarray(2).toString('latin1') };
    return { type: rdn[0].type, value: v.toString() };
  });
}

/** IPs compared through the WHATWG URL parser's canonical form, independent of both implementations. */
export function canonicalIp(ip: string): string {
  return ip.includes(':') ? new URL(`http://[${ip}]/`).hostname : new URL(`http://${ip}/`).hostname;
}

const buf = (b: ArrayBuffer | ArrayBufferView) => (ArrayBuffer.isView(b) ? Buffer.from(b.buffer, b.byteOffset, b.byteLength) : Buffer.from(b));

export interface ReferenceExtensions {
  extensions: Extension[];
  isCA?: boolean;
  pathLen?: number;
  keyUsage?: string[];
  extKeyUsageOids?: string[];
  sans?: { dns: string[]; ip: string[]; uri: string[]; email: string[] };
  subjectKeyId?: Buffer;
  authorityKeyId?: Buffer;
}

// What each side reads inside extensions: a CSR's parser reads only these four; others stay raw bytes.
const CSR_READS = new Set<string>([OID.subjectAltName, OID.basicConstraints, OID.keyUsage, OID.extKeyUsage]);

function readExtensions(exts: Extensions | undefined, reads?: Set<string>): ReferenceExtensions {
  const out: ReferenceExtensions = { extensions: [] };
  for (const e of exts ?? []) {
    const value = buf(e.extnValue.buffer);
    out.extensions.push({ oid: e.extnID, critical: e.critical, value });
    if (reads && !reads.has(e.extnID)) continue;
    switch (e.extnID) {
      case OID.basicConstraints: {
        const bc = AsnConvert.parse(value, BasicConstraints);
        out.isCA = bc.cA;
        out.pathLen = bc.pathLenConstraint;
        break;
      }
      case OID.keyUsage:
        out.keyUsage = Array.from(AsnConvert.parse(value, KeyUsage).toJSON(), (u) => (u === 'crlSign' ? 'cRLSign' : u));
        break;
      case OID.extKeyUsage:
        out.extKeyUsageOids = [...AsnConvert.parse(value, ExtendedKeyUsage)];
        break;
      case OID.subjectAltName: {
        const s = { dns: [] as string[], ip: [] as string[], uri: [] as string[], email: [] as string[] };
        for (const g of AsnConvert.parse(value, SubjectAlternativeName)) {
          if (g.dNSName !== undefined) s.dns.push(g.dNSName);
          if (g.iPAddress !== undefined) s.ip.push(canonicalIp(g.iPAddress));
          if (g.uniformResourceIdentifier !== undefined) s.uri.push(g.uniformResourceIdentifier);
          if (g.rfc822Name !== undefined) s.email.push(g.rfc822Name);
        }
        out.sans = s;
        break;
      }
      case OID.subjectKeyIdentifier:
        out.subjectKeyId = buf(AsnConvert.parse(value, SubjectKeyIdentifier).buffer);
        break;
      case OID.authorityKeyIdentifier: {
        const aki = AsnConvert.parse(value, AuthorityKeyIdentifier);
        if (aki.keyIdentifier) out.authorityKeyId = buf(aki.keyIdentifier.buffer);
        break;
      }
    }
  }
  return out;
}

function stripSign(b: Buffer): Buffer {
  return b.length > 1 && b[0] === 0 ? b.subarray(1) : b;
}

export interface ReferenceCertificate extends ReferenceExtensions {
  reencoded: Buffer;
  version: number;
  serial: Buffer;
  signatureAlgorithmOid: string;
  issuer: Array<{ type: string; value: string }>;
  subject: Array<{ type: string; value: string }>;
  notBefore: Date;
  notAfter: Date;
  publicKey: Buffer;
  signature: Buffer;
}

export function referenceCertificate(der: Buffer): ReferenceCertificate {
  const c = AsnConvert.parse(der, Certificate);
  const t = c.tbsCertificate;
  return {
    reencoded: Buffer.from(AsnConvert.serialize(c)),
    version: t.version + 1,
    serial: stripSign(buf(t.serialNumber)),
    signatureAlgorithmOid: c.signatureAlgorithm.algorithm,
    issuer: asnName(t.issuer),
    subject: asnName(t.subject),
    notBefore: t.validity.notBefore.getTime(),
    notAfter: t.validity.notAfter.getTime(),
    publicKey: Buffer.from(AsnConvert.serialize(t.subjectPublicKeyInfo)),
    signature: buf(c.signatureValue),
    ...readExtensions(t.extensions),
  };
}

export interface ReferenceCsr extends ReferenceExtensions {
  reencoded: Buffer;
  subject: Array<{ type: string; value: string }>;
  publicKey: Buffer;
  signatureAlgorithmOid: string;
  signature: Buffer;
}

export function referenceCsr(der: Buffer): ReferenceCsr {
  const c = AsnConvert.parse(der, CertificationRequest);
  const info = c.certificationRequestInfo;
  const req = info.attributes.find((a) => a.type === OID.extensionRequest);
  return {
    reencoded: Buffer.from(AsnConvert.serialize(c)),
    subject: asnName(info.subject),
    publicKey: Buffer.from(AsnConvert.serialize(info.subjectPKInfo)),
    signatureAlgorithmOid: c.signatureAlgorithm.algorithm,
    signature: buf(c.signature),
    ...readExtensions(req ? AsnConvert.parse(req.values[0], Extensions) : undefined, CSR_READS),
  };
}
