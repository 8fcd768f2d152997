// Which generation of an authority issued a certificate, and which generations a trust bundle holds: matched by key id
// (a leaf's authority key id is its issuer's subject key id), so a cross-certificate and a self-signed one agree.
import type { AuthorityKind } from '../ca/authority.js';
import type { ClusterView } from '../ca/service.js';
import { parseCertificates, type ParsedCertificate } from '../pki/index.js';

type Keys = Array<{ generation: number; ski: string }>;
const generationKeys = new WeakMap<ClusterView, Map<AuthorityKind, Keys>>();

function keysOf(view: ClusterView, kind: AuthorityKind): Keys {
  let byKind = generationKeys.get(view);
  if (!byKind) generationKeys.set(view, (byKind = new Map()));
  let keys = byKind.get(kind);
  if (!keys) {
    const a = view.authorities.find((x) => x.kind === kind);
    if (!a) throw new Error(`cluster ${view.name} has no ${kind} authority`);
    keys = a.generations.filter((g) => g.certificate).map((g) => ({ generation: g.generation, ski: parseCertificates(g.certificate!)[0]?.subjectKeyId?.toString('hex') ?? '' }));
    byKind.set(kind, keys);
  }
  return keys;
}

/** The active (signing) generation of `kind`; undefined when it has none. */
export function activeGenerationOf(view: Pick<ClusterView, 'authorities'>, kind: AuthorityKind): number | undefined {
  return view.authorities.find((a) => a.kind === kind)?.generations.find((g) => g.state === 'active')?.generation;
}

/** The generation of `kind` whose key issued `leaf`; 0 when none. */
export function generationOf(view: ClusterView, leaf: ParsedCertificate, kind: AuthorityKind = 'root'): number {
  return generationOfKeyId(view, leaf.authorityKeyId?.toString('hex') ?? '', kind);
}

/** The generation of `kind` whose CA key has subject key id `keyId` (lower-case hex); 0 when none. */
export function generationOfKeyId(view: ClusterView, keyId: string, kind: AuthorityKind): number {
  return (keyId && keysOf(view, kind).find((k) => k.ski === keyId)?.generation) || 0;
}

/** The generation that issued the first certificate of a PEM file (a leaf, maybe followed by its chain); 0 when none. */
export function generationOfPem(view: ClusterView, pem: string, kind: AuthorityKind): number {
  const [leaf] = parseCertificates(pem);
  return leaf ? generationOf(view, leaf, kind) : 0;
}

/** The generations of `kind` whose CA certificates a trust bundle (PEM) holds, ascending. */
export function generationsInBundle(view: ClusterView, bundle: string, kind: AuthorityKind): number[] {
  const skis = new Set(parseCertificates(bundle).map((c) => c.subjectKeyId?.toString('hex')));
  return keysOf(view, kind)
    .filter((k) => skis.has(k.ski))
    .map((k) => k.generation)
    .sort((a, b) => a - b);
}
