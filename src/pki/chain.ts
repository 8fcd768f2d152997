// Path validation: from a leaf through intermediates to a trusted root, across cross-signed CA generations.
import type { KeyObject } from 'node:crypto';
import { invalid } from '../util/errors.js';
import { importPublicKey, parsePublicKeyInfo, signatureAlgorithmByOid, verifyWithKey } from './keys.js';
import { formatName, sameName } from './name.js';
import { OID } from './oids.js';
import type { ExtKeyUsage, ParsedCertificate } from './types.js';

export interface VerifyOptions {
  /** The time at which every certificate on the path must be valid. */
  at: Date;
  /** Required of the leaf's extended key usage (and of any CA on the path that restricts EKU). */
  purpose?: Extract<ExtKeyUsage, 'serverAuth' | 'clientAuth'>;
}

const MAX_DEPTH = 8;

// Extensions whose meaning this validator applies; any other critical extension makes a certificate unusable (RFC 5280 4.2).
const UNDERSTOOD = new Set<string>([
  OID.basicConstraints,
  OID.keyUsage,
  OID.extKeyUsage,
  OID.subjectAltName,
  OID.subjectKeyIdentifier,
  OID.authorityKeyIdentifier,
]);

function label(c: ParsedCertificate): string {
  return `"${formatName(c.subject) || '(empty subject)'}"`;
}

function selfIssued(c: ParsedCertificate): boolean {
  return sameName({ der: c.subjectDer, name: c.subject }, { der: c.issuerDer, name: c.issuer });
}

function validAt(c: ParsedCertificate, at: Date): string | undefined {
  const t = at.getTime();
  if (t < c.notBefore.getTime()) return `${label(c)} is not yet valid at ${at.toISOString()} (notBefore ${c.notBefore.toISOString()})`;
  if (t > c.notAfter.getTime()) return `${label(c)} has expired at ${at.toISOString()} (notAfter ${c.notAfter.toISOString()})`;
  return undefined;
}

function unknownCritical(c: ParsedCertificate): string | undefined {
  const e = c.extensions.find((x) => x.critical && !UNDERSTOOD.has(x.oid));
  return e ? `${label(c)} has critical extension ${e.oid}, which is not understood` : undefined;
}

function ekuProblem(c: ParsedCertificate, purpose: string | undefined): string | undefined {
  if (!purpose || !c.extensions.some((e) => e.oid === OID.extKeyUsage)) return undefined;
  if (c.extKeyUsage.includes(purpose as ExtKeyUsage) || c.extKeyUsageOids.includes(OID.anyExtendedKeyUsage)) return undefined;
  return `${label(c)} has extended key usage ${c.extKeyUsage.join(', ') || c.extKeyUsageOids.join(', ')}, not ${purpose}`;
}

/**
 * Finds a path leaf → intermediates → one of `roots` on which every issuer name matches, every signature verifies, every
 * certificate is valid at `at`, every issuer is a CA with keyCertSign, path lengths hold and the leaf serves `purpose`.
 * Returns the path (leaf first, root last); throws Invalid saying why no path was found.
 */
export function verifyChain(
  leaf: ParsedCertificate,
  intermediates: readonly ParsedCertificate[],
  roots: readonly ParsedCertificate[],
  options: VerifyOptions,
): ParsedCertificate[] {
  const { at, purpose } = options;
  if (!(at instanceof Date) || Number.isNaN(at.getTime())) throw invalid('verifyChain needs a valid time `at`');
  if (roots.length === 0) throw invalid('no trusted roots were given');
  const leafProblem = validAt(leaf, at) ?? unknownCritical(leaf) ?? ekuProblem(leaf, purpose);
  if (leafProblem) throw invalid(`certificate ${leafProblem}`);

  const rootSet = new Set(roots.map((r) => r.sha256));
  // A trusted certificate presented as the leaf is its own path.
  if (rootSet.has(leaf.sha256)) return [leaf];
  const candidates = [...roots, ...intermediates.filter((c) => !rootSet.has(c.sha256))];
  const keys = new Map<string, KeyObject>();
  const keyOf = (c: ParsedCertificate): KeyObject => {
    let k = keys.get(c.sha256);
    if (!k) keys.set(c.sha256, (k = importPublicKey(parsePublicKeyInfo(c.publicKey))));
    return k;
  };
  const problems: string[] = [];
  const note = (p: string) => {
    if (!problems.includes(p)) problems.push(p);
  };

  // Depth-first: cross-signed generations give a name several candidate issuers, and only some lead to a root.
  const extend = (path: ParsedCertificate[]): ParsedCertificate[] | undefined => {
    const child = path[path.length - 1];
    if (path.length > MAX_DEPTH) {
      note(`path from ${label(leaf)} is longer than ${MAX_DEPTH} certificates`);
      return undefined;
    }
    const issuerName = { der: child.issuerDer, name: child.issuer };
    let found = false;
    for (const ca of candidates) {
      if (!sameName(issuerName, { der: ca.subjectDer, name: ca.subject })) continue;
      if (child.authorityKeyId && ca.subjectKeyId && !child.authorityKeyId.equals(ca.subjectKeyId)) continue;
      // Another certificate for a name and key already on the path (a generation's self-signed root next to its
      // cross-certificate) only makes the path longer.
      if (path.some((p) => p.sha256 === ca.sha256 || (p !== leaf && p.subjectDer.equals(ca.subjectDer) && p.publicKey.equals(ca.publicKey)))) continue;
      found = true;
      const problem = issuerProblem(ca, child, path, at, purpose, keyOf);
      if (problem) {
        note(problem);
        continue;
      }
      if (rootSet.has(ca.sha256)) return [...path, ca];
      const longer = extend([...path, ca]);
      if (longer) return longer;
    }
    if (!found) {
      note(`no issuer "${formatName(child.issuer)}" of ${label(child)} is among the ${path.length === 1 ? 'intermediates and roots' : 'remaining certificates'}`);
    }
    return undefined;
  };

  const path = extend([leaf]);
  if (path) return path;
  throw invalid(`certificate ${label(leaf)} does not chain to a trusted root: ${problems.join('; ')}`);
}

function issuerProblem(
  ca: ParsedCertificate,
  child: ParsedCertificate,
  path: ParsedCertificate[],
  at: Date,
  purpose: string | undefined,
  keyOf: (c: ParsedCertificate) => KeyObject,
): string | undefined {
  if (!ca.isCA) return `${label(ca)} is not a CA (basicConstraints cA is not true) and cannot issue ${label(child)}`;
  if (!ca.keyUsage.includes('keyCertSign')) return `${label(ca)} lacks keyUsage keyCertSign and cannot issue ${label(child)}`;
  const expired = validAt(ca, at);
  if (expired) return expired;
  const critical = unknownCritical(ca);
  if (critical) return critical;
  const eku = ekuProblem(ca, purpose);
  if (eku) return eku;
  if (ca.pathLen !== undefined) {
    // Intermediate CAs below this one, not counting self-issued ones (RFC 5280 6.1.4 (l)).
    const below = path.slice(1).filter((c) => !selfIssued(c)).length;
    if (below > ca.pathLen) return `${label(ca)} allows ${ca.pathLen} intermediate CA(s) below it (pathLen), the path has ${below}`;
  }
  let ok = false;
  try {
    ok = verifyWithKey(keyOf(ca), signatureAlgorithmByOid(child.signatureAlgorithmOid), child.tbs, child.signature);
  } catch (e) {
    return `${label(ca)}'s key cannot check ${label(child)}: ${(e as Error).message}`;
  }
  if (!ok) return `signature of ${label(child)} does not verify with the key of ${label(ca)}`;
  return undefined;
}
