// Authorities and their generations: the per-cluster CAs (cluster root, etcd API, etcd peer) as plain values.

export const AUTHORITY_KINDS = ['root', 'etcd-api', 'etcd-peer'] as const;
export type AuthorityKind = (typeof AUTHORITY_KINDS)[number];

/**
 * A generation moves prepared → active → previous → retired. Only the active one signs; the trust bundle holds
 * every generation that is prepared, active or previous, so clients trust the next key before it signs and the
 * old key until it is retired (its key is destroyed then).
 */
export type GenerationState = 'preparing' | 'prepared' | 'active' | 'previous' | 'retired';

export interface Generation {
  generation: number;
  state: GenerationState;
  /** Key store id of the CA key; absent once destroyed. */
  keyId?: string;
  keyLabel: string;
  /** Self-signed CA certificate, PEM. */
  certificate?: string;
  /** The same subject and key certified by the generation before it (absent for generation 1), PEM. */
  crossCertificate?: string;
  notBefore?: string; // ISO
  notAfter?: string; // ISO
  sha256?: string;
  subject?: string;
}

export interface Authority {
  kind: AuthorityKind;
  generations: Generation[];
}

export function isAuthorityKind(v: string): v is AuthorityKind {
  return (AUTHORITY_KINDS as readonly string[]).includes(v);
}

export function activeGeneration(a: Authority): Generation | undefined {
  return a.generations.find((g) => g.state === 'active');
}

/** Generations whose certificate belongs in the trust bundle. */
export function trustedGenerations(a: Authority): Generation[] {
  return a.generations.filter((g) => g.state === 'prepared' || g.state === 'active' || g.state === 'previous');
}

/** The trust bundle: the self-signed certificates of every trusted generation, newest first. */
export function bundlePem(a: Authority): string {
  return trustedGenerations(a)
    .slice()
    .sort((x, y) => y.generation - x.generation)
    .map((g) => g.certificate ?? '')
    .join('');
}

export function authorityTitle(kind: AuthorityKind): string {
  return kind === 'root' ? 'cluster root CA' : kind === 'etcd-api' ? 'etcd API CA' : 'etcd peer CA';
}
