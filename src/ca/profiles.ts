// Signer profiles: the CA service's policy, as data, and the pure decision of what a CSR may become.
import type { AuthorityKind } from './authority.js';
import type { CertificateTemplate, ExtKeyUsage, KeyUsage, Name, ParsedCsr } from '../pki/types.js';

export type CallerRole = 'fleet' | 'cluster';

type SubjectRule =
  /** CN "system:node:<name>", O exactly ["system:nodes"], nothing else. */
  | { kind: 'node' }
  /** A Kubernetes user: CN non-empty; groups free except system:masters (admin operation only) and the node identities. */
  | { kind: 'user' }
  /** CN "system:trustplane:<component>" for a known component; no O. */
  | { kind: 'component' }
  /** Any non-empty CN and optional O (servers and etcd identities, issued only to trusted callers). */
  | { kind: 'any-cn' };

export interface SignerProfile {
  name: string;
  description: string;
  authority: AuthorityKind;
  /** Roles allowed to ask for this signer. */
  callers: CallerRole[];
  subject: SubjectRule;
  /** 'none': a CSR with any SAN is refused; 'dns-ip': at least one SAN, DNS names and IP addresses only. */
  sans: 'none' | 'dns-ip';
  keyUsage: KeyUsage[];
  extKeyUsage: ExtKeyUsage[];
  defaultLifetimeSeconds: number;
}

const DAY = 86400;
const YEAR = 365 * DAY;

export const COMPONENTS = ['apiserver-kubelet-client', 'tunnel-server', 'controller-manager'] as const;

/** Every signer the CA service knows. Nothing else can ever be issued. */
export const PROFILES: readonly SignerProfile[] = [
  {
    name: 'kubernetes.io/kube-apiserver-client-kubelet',
    description: 'kubelet (node agent) client certificates: CN system:node:<name>, O system:nodes',
    authority: 'root',
    callers: ['cluster', 'fleet'],
    subject: { kind: 'node' },
    sans: 'none',
    keyUsage: ['digitalSignature'],
    extKeyUsage: ['clientAuth'],
    defaultLifetimeSeconds: YEAR,
  },
  {
    name: 'kubernetes.io/kubelet-serving',
    description: 'node endpoint serving certificates: CN system:node:<name>, O system:nodes, DNS/IP SANs',
    authority: 'root',
    callers: ['cluster', 'fleet'],
    subject: { kind: 'node' },
    sans: 'dns-ip',
    keyUsage: ['digitalSignature'],
    extKeyUsage: ['serverAuth'],
    defaultLifetimeSeconds: YEAR,
  },
  {
    name: 'kubernetes.io/kube-apiserver-client',
    description: 'API client certificates for users; the system:masters group only through the admin operation',
    authority: 'root',
    callers: ['cluster', 'fleet'],
    subject: { kind: 'user' },
    sans: 'none',
    keyUsage: ['digitalSignature'],
    extKeyUsage: ['clientAuth'],
    defaultLifetimeSeconds: YEAR,
  },
  {
    name: 'trustplane.io/kube-apiserver-serving',
    description: "the cluster API server's serving certificate",
    authority: 'root',
    callers: ['fleet'],
    subject: { kind: 'any-cn' },
    sans: 'dns-ip',
    keyUsage: ['digitalSignature'],
    extKeyUsage: ['serverAuth'],
    defaultLifetimeSeconds: YEAR,
  },
  {
    name: 'trustplane.io/control-plane-component',
    description: 'client identities of control-plane components: CN system:trustplane:<component>',
    authority: 'root',
    callers: ['fleet'],
    subject: { kind: 'component' },
    sans: 'none',
    keyUsage: ['digitalSignature'],
    extKeyUsage: ['clientAuth'],
    defaultLifetimeSeconds: YEAR,
  },
  {
    name: 'trustplane.io/etcd-server',
    description: 'etcd client-port serving certificates (clientAuth too: etcd dials itself)',
    authority: 'etcd-api',
    callers: ['fleet'],
    subject: { kind: 'any-cn' },
    sans: 'dns-ip',
    keyUsage: ['digitalSignature'],
    extKeyUsage: ['serverAuth', 'clientAuth'],
    defaultLifetimeSeconds: YEAR,
  },
  {
    name: 'trustplane.io/etcd-client',
    description: 'etcd client certificates (API server → state store, etcdctl)',
    authority: 'etcd-api',
    callers: ['fleet'],
    subject: { kind: 'any-cn' },
    sans: 'none',
    keyUsage: ['digitalSignature'],
    extKeyUsage: ['clientAuth'],
    defaultLifetimeSeconds: YEAR,
  },
  {
    name: 'trustplane.io/etcd-peer',
    description: 'etcd member-to-member certificates',
    authority: 'etcd-peer',
    callers: ['fleet'],
    subject: { kind: 'any-cn' },
    sans: 'dns-ip',
    keyUsage: ['digitalSignature'],
    extKeyUsage: ['serverAuth', 'clientAuth'],
    defaultLifetimeSeconds: YEAR,
  },
];

const BY_NAME = new Map(PROFILES.map((p) => [p.name, p]));

export function findProfile(name: string): SignerProfile | undefined {
  return BY_NAME.get(name);
}

/** Kubernetes' minimum for spec.expirationSeconds. */
export const MIN_LIFETIME_SECONDS = 600;
/** Certificates are backdated a little, as Kubernetes' signer does, to tolerate clock skew. */
export const BACKDATE_MS = 5 * 60 * 1000;

const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_SAN = '2.5.29.17';
/** Extensions a CSR may mark critical: ones the CA understands and then ignores or replaces from the profile. */
const UNDERSTOOD_CRITICAL = new Set([OID_BASIC_CONSTRAINTS, OID_SAN, '2.5.29.15' /* keyUsage */, '2.5.29.37' /* EKU */]);

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_NAME = /^(?=.{1,253}$)([a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)*$/;

export interface SignRequest {
  signer: string;
  csr: ParsedCsr;
  /** spec.expirationSeconds: asked-for lifetime; beyond the issuer's expiry it is refused. */
  expirationSeconds?: number;
  /** The explicit admin operation: lets kube-apiserver-client issue system:masters. Fleet callers only. */
  admin?: boolean;
}

export interface Caller {
  role: CallerRole;
  /** For role 'cluster': the only cluster it may act for. */
  cluster?: string;
  name: string;
}

export type Decision =
  | { allow: true; profile: SignerProfile; template: CertificateTemplate }
  | { allow: false; code: 'Forbidden' | 'Invalid'; reason: string };

/** A request the caller is not entitled to make. */
const forbid = (reason: string): Decision => ({ allow: false, code: 'Forbidden', reason });
/** A request that no caller could have granted: bad CSR content for the signer. */
const deny = (reason: string): Decision => ({ allow: false, code: 'Invalid', reason });

function values(name: Name, type: string): string[] {
  return name.filter((a) => a.type === type).map((a) => a.value);
}

function checkSubject(rule: SubjectRule, subject: Name, admin: boolean): string | undefined {
  const cns = values(subject, 'CN');
  const os = values(subject, 'O');
  const others = subject.filter((a) => a.type !== 'CN' && a.type !== 'O').map((a) => a.type);
  if (cns.length !== 1 || cns[0] === '') return `subject must have exactly one non-empty CN (has ${cns.length})`;
  const cn = cns[0];
  switch (rule.kind) {
    case 'node': {
      if (!cn.startsWith('system:node:')) return `CN "${cn}" must be "system:node:<node name>"`;
      const node = cn.slice('system:node:'.length);
      if (node.length === 0 || node.length > 253 || !DNS1123_SUBDOMAIN.test(node))
        return `node name "${node}" in CN is not a lower-case DNS-1123 subdomain`;
      if (os.length !== 1 || os[0] !== 'system:nodes') return `O must be exactly ["system:nodes"] (has ${JSON.stringify(os)})`;
      if (others.length) return `subject may hold only CN and O (has ${others.join(', ')})`;
      return undefined;
    }
    case 'user': {
      if (cn.startsWith('system:node:') || os.includes('system:nodes'))
        return `node identities (CN system:node:*, O system:nodes) must use signer kubernetes.io/kube-apiserver-client-kubelet`;
      if (os.includes('system:masters') && !admin)
        return 'group system:masters is granted only by the explicit admin operation (trustplane clusters get-credentials)';
      if (cn.startsWith('system:trustplane:')) return `CN prefix system:trustplane: is reserved for control-plane components`;
      if (others.length) return `subject may hold only CN and O (has ${others.join(', ')})`;
      return undefined;
    }
    case 'component': {
      const m = /^system:trustplane:(.+)$/.exec(cn);
      if (!m || !(COMPONENTS as readonly string[]).includes(m[1]))
        return `CN "${cn}" must be system:trustplane:<component>, component one of ${COMPONENTS.join(', ')}`;
      if (os.length || others.length) return 'a component subject holds only its CN';
      return undefined;
    }
    case 'any-cn':
      if (others.length) return `subject may hold only CN and O (has ${others.join(', ')})`;
      return undefined;
  }
}

function checkSans(mode: SignerProfile['sans'], csr: ParsedCsr): string | undefined {
  const s = csr.sans;
  const count = s.dns.length + s.ip.length + s.uri.length + s.email.length;
  if (mode === 'none') return count > 0 ? 'this signer issues client certificates: the CSR must not request subject alternative names' : undefined;
  if (s.uri.length || s.email.length) return 'only DNS names and IP addresses are allowed as subject alternative names';
  if (count === 0) return 'a serving certificate needs at least one DNS or IP subject alternative name';
  for (const d of s.dns) if (!DNS_NAME.test(d)) return `DNS SAN "${d}" is not a valid host name (wildcards are not issued)`;
  return undefined;
}

/**
 * Should this caller get this CSR signed with this profile, and into what certificate?
 * `issuerNotAfter`: the expiry of the generation that would sign.
 */
export function decide(caller: Caller, cluster: string, req: SignRequest, issuerNotAfter: Date, now: Date): Decision {
  if (caller.role === 'cluster' && caller.cluster !== cluster)
    return forbid(`caller ${caller.name} is bound to cluster "${caller.cluster}" and may not sign for cluster "${cluster}"`);
  const profile = findProfile(req.signer);
  if (!profile) return deny(`unknown signer "${req.signer}"; known signers: ${PROFILES.map((p) => p.name).join(', ')}`);
  if (!profile.callers.includes(caller.role)) return forbid(`signer ${profile.name} may not be used by ${caller.role} callers`);
  if (req.admin && caller.role !== 'fleet') return forbid('the admin operation is reserved to the fleet (control plane host)');
  if (req.admin && profile.name !== 'kubernetes.io/kube-apiserver-client') return deny(`the admin operation applies only to kubernetes.io/kube-apiserver-client`);

  const csr = req.csr;
  for (const e of csr.extensions) {
    if (e.critical && !UNDERSTOOD_CRITICAL.has(e.oid)) return deny(`CSR requests unknown critical extension ${e.oid}`);
  }
  const bc = csr.requestedBasicConstraints;
  if (bc && (bc.isCA || bc.pathLen !== undefined)) return deny('CSR requests CA:true or a path length; no signer issues CA certificates');

  const subjectProblem = checkSubject(profile.subject, csr.subject, req.admin === true);
  if (subjectProblem) return deny(subjectProblem);
  const sanProblem = checkSans(profile.sans, csr);
  if (sanProblem) return deny(sanProblem);

  const nowMs = now.getTime();
  if (issuerNotAfter.getTime() <= nowMs) return deny(`the ${profile.authority} authority has expired (${issuerNotAfter.toISOString()})`);
  let notAfterMs: number;
  if (req.expirationSeconds !== undefined) {
    const e = req.expirationSeconds;
    if (!Number.isInteger(e) || e < MIN_LIFETIME_SECONDS) return deny(`expirationSeconds must be an integer of at least ${MIN_LIFETIME_SECONDS}`);
    notAfterMs = nowMs + e * 1000;
    if (notAfterMs > issuerNotAfter.getTime())
      return deny(`requested lifetime ends ${new Date(notAfterMs).toISOString()}, after the issuing CA expires (${issuerNotAfter.toISOString()})`);
  } else {
    // The default lifetime is shortened to the issuer's expiry rather than refused: no certificate outlives its CA.
    notAfterMs = Math.min(nowMs + profile.defaultLifetimeSeconds * 1000, issuerNotAfter.getTime());
  }

  // RSA server keys need keyEncipherment for TLS 1.2 RSA key exchange-era clients; ECDSA and Ed25519 do not.
  const keyUsage: KeyUsage[] =
    csr.keyAlgorithm.kind === 'rsa' && profile.extKeyUsage.includes('serverAuth') ? [...profile.keyUsage, 'keyEncipherment'] : profile.keyUsage;

  const subject: Name = csr.subject.map((a) => ({ type: a.type, value: a.value }));
  const template: CertificateTemplate = {
    subject,
    notBefore: new Date(Math.max(nowMs - BACKDATE_MS, 0)),
    notAfter: new Date(notAfterMs),
    publicKey: csr.publicKey,
    isCA: false,
    keyUsage,
    extKeyUsage: profile.extKeyUsage,
    sans: profile.sans === 'none' ? undefined : { dns: csr.sans.dns, ip: csr.sans.ip },
  };
  return { allow: true, profile, template };
}
