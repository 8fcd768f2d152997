// Signer profiles: the CA service's policy, as data, and the pure decision of what a CSR may become.
import { BlockList, isIP } from 'node:net';
import type { AuthorityKind } from './authority.js';
import { decodeExtKeyUsage, EKU_OIDS } from '../pki/extensions.js';
import { claimsNodeIdentity, nodeOfSubject, NODE_USER_PREFIX, NODES_GROUP } from '../pki/node-identity.js';
import { OID } from '../pki/oids.js';
import {
  SIGNER_APISERVER_CLIENT,
  SIGNER_APISERVER_SERVING,
  SIGNER_CONTROL_PLANE_COMPONENT,
  SIGNER_ETCD_CLIENT,
  SIGNER_ETCD_PEER,
  SIGNER_ETCD_SERVER,
  SIGNER_KUBELET_CLIENT,
  SIGNER_KUBELET_SERVING,
} from '../pki/signer-names.js';
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

/** A CSR's spec.usages value (certificates.k8s.io/v1 KeyUsage) this project can issue. */
export type Usage = 'digital signature' | 'key encipherment' | 'client auth' | 'server auth';

/** How each asked-for usage appears in the certificate. */
const USAGE_BITS: Record<Usage, { keyUsage?: KeyUsage; extKeyUsage?: ExtKeyUsage }> = {
  'digital signature': { keyUsage: 'digitalSignature' },
  'key encipherment': { keyUsage: 'keyEncipherment' },
  'client auth': { extKeyUsage: 'clientAuth' },
  'server auth': { extKeyUsage: 'serverAuth' },
};

export interface SignerProfile {
  name: string;
  description: string;
  authority: AuthorityKind;
  /** Roles allowed to ask for this signer. */
  callers: CallerRole[];
  subject: SubjectRule;
  /** 'none': a CSR with any SAN is refused; 'dns-ip': at least one SAN, DNS names and IP addresses only. */
  sans: 'none' | 'dns-ip';
  /** What the certificate carries when the caller names no usages (the fleet's own credentials). */
  keyUsage: KeyUsage[];
  extKeyUsage: ExtKeyUsage[];
  /**
   * spec.usages, as Kubernetes' signers judge them: every `required` one must be asked, nothing outside `allowed` may
   * be; the certificate then carries exactly what was asked. Anything else ends the CSR Failed, the usage named.
   */
  usages: { required: Usage[]; allowed: Usage[] };
  /** kubelet-serving: the SAN checks that keep a node from passing as the API server or another node. */
  servingNames?: 'node';
  defaultLifetimeSeconds: number;
}

const DAY = 86400;
const YEAR = 365 * DAY;

export const COMPONENTS = ['apiserver-kubelet-client', 'tunnel-server', 'controller-manager'] as const;

/** Every signer the CA service knows. Nothing else can ever be issued. */
// Kubernetes' table (kube-controller-manager's signers): client signers require "client auth" and allow digital
// signature and key encipherment beside it; kubelet-serving requires "server auth" and allows the same two.
const CLIENT_USAGES: SignerProfile['usages'] = { required: ['client auth'], allowed: ['digital signature', 'key encipherment', 'client auth'] };
const SERVING_USAGES: SignerProfile['usages'] = { required: ['server auth'], allowed: ['digital signature', 'key encipherment', 'server auth'] };
const SERVER_AND_CLIENT_USAGES: SignerProfile['usages'] = {
  required: ['server auth', 'client auth'],
  allowed: ['digital signature', 'key encipherment', 'server auth', 'client auth'],
};

export const PROFILES: readonly SignerProfile[] = [
  {
    name: SIGNER_KUBELET_CLIENT,
    description: 'kubelet (node agent) client certificates: CN system:node:<name>, O system:nodes',
    authority: 'root',
    callers: ['cluster', 'fleet'],
    subject: { kind: 'node' },
    sans: 'none',
    keyUsage: ['digitalSignature'],
    extKeyUsage: ['clientAuth'],
    usages: CLIENT_USAGES,
    defaultLifetimeSeconds: YEAR,
  },
  {
    name: SIGNER_KUBELET_SERVING,
    description: 'node endpoint serving certificates: CN system:node:<name>, O system:nodes, DNS/IP SANs',
    authority: 'root',
    callers: ['cluster', 'fleet'],
    subject: { kind: 'node' },
    sans: 'dns-ip',
    keyUsage: ['digitalSignature'],
    extKeyUsage: ['serverAuth'],
    usages: SERVING_USAGES,
    servingNames: 'node',
    defaultLifetimeSeconds: YEAR,
  },
  {
    name: SIGNER_APISERVER_CLIENT,
    description: 'API client certificates for users; the system:masters group only through the admin operation',
    authority: 'root',
    callers: ['cluster', 'fleet'],
    subject: { kind: 'user' },
    sans: 'none',
    keyUsage: ['digitalSignature'],
    extKeyUsage: ['clientAuth'],
    usages: CLIENT_USAGES,
    defaultLifetimeSeconds: YEAR,
  },
  {
    name: SIGNER_APISERVER_SERVING,
    description: "the cluster API server's serving certificate",
    authority: 'root',
    callers: ['fleet'],
    subject: { kind: 'any-cn' },
    sans: 'dns-ip',
    keyUsage: ['digitalSignature'],
    extKeyUsage: ['serverAuth'],
    usages: SERVING_USAGES,
    defaultLifetimeSeconds: YEAR,
  },
  {
    name: SIGNER_CONTROL_PLANE_COMPONENT,
    description: 'client identities of control-plane components: CN system:trustplane:<component>',
    authority: 'root',
    callers: ['fleet'],
    subject: { kind: 'component' },
    sans: 'none',
    keyUsage: ['digitalSignature'],
    extKeyUsage: ['clientAuth'],
    usages: CLIENT_USAGES,
    defaultLifetimeSeconds: YEAR,
  },
  {
    name: SIGNER_ETCD_SERVER,
    description: 'etcd client-port serving certificates (clientAuth too: etcd dials itself)',
    authority: 'etcd-api',
    callers: ['fleet'],
    subject: { kind: 'any-cn' },
    sans: 'dns-ip',
    keyUsage: ['digitalSignature'],
    extKeyUsage: ['serverAuth', 'clientAuth'],
    usages: SERVER_AND_CLIENT_USAGES,
    defaultLifetimeSeconds: YEAR,
  },
  {
    name: SIGNER_ETCD_CLIENT,
    description: 'etcd client certificates (API server → state store, etcdctl)',
    authority: 'etcd-api',
    callers: ['fleet'],
    subject: { kind: 'any-cn' },
    sans: 'none',
    keyUsage: ['digitalSignature'],
    extKeyUsage: ['clientAuth'],
    usages: CLIENT_USAGES,
    defaultLifetimeSeconds: YEAR,
  },
  {
    name: SIGNER_ETCD_PEER,
    description: 'etcd member-to-member certificates',
    authority: 'etcd-peer',
    callers: ['fleet'],
    subject: { kind: 'any-cn' },
    sans: 'dns-ip',
    keyUsage: ['digitalSignature'],
    extKeyUsage: ['serverAuth', 'clientAuth'],
    usages: SERVER_AND_CLIENT_USAGES,
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

const DNS_NAME = /^(?=.{1,253}$)([a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)*$/;

export interface SignRequest {
  signer: string;
  csr: ParsedCsr;
  /** spec.expirationSeconds: asked-for lifetime; beyond the issuer's expiry it is refused. */
  expirationSeconds?: number;
  /** The explicit admin operation: lets kube-apiserver-client issue system:masters. Fleet callers only. */
  admin?: boolean;
  /** spec.usages of the CSR; absent: the profile's own usages (the fleet's credentials). */
  usages?: readonly string[];
  /** The cluster's names and addresses no kubelet serving certificate may carry; the defaults when absent. */
  reservations?: ServingReservations;
}

/**
 * What the CA knows of one cluster that a node must never be certified for: the API server's names and addresses (the
 * SANs the CA put in its serving certificates) and the service network (kubernetes.default.svc's ClusterIP lives there).
 */
export interface ServingReservations {
  /** DNS names of the API server (beyond the Kubernetes names below, which are always reserved). */
  dns: readonly string[];
  /** IP addresses of the API server. */
  ip: readonly string[];
  /** The service network; DEFAULT_SERVICE_CIDRS when absent. */
  serviceCidrs?: readonly string[];
}

/** kubeadm's default service network: where kubernetes.default.svc's ClusterIP (10.96.0.1) lives. */
export const DEFAULT_SERVICE_CIDRS: readonly string[] = ['10.96.0.0/12'];
/** The in-cluster names of the API server, reserved in every cluster; kubernetes.default.svc.<cluster domain> too. */
export const KUBERNETES_API_NAMES: readonly string[] = ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'localhost'];

/**
 * Loopback addresses name the client's own host, never the API server across the network: a node certified for
 * 127.0.0.1 can only answer clients on its own machine (the node agent serves its endpoint there). They are kept out of
 * the reserved API server addresses; 'localhost' as a DNS name is reserved all the same (no node needs it).
 */
function isLoopback(ip: string): boolean {
  const c = canonicalIp(ip);
  return c !== undefined && (c === '::1' || /^127\./.test(c));
}

/** IP addresses in one textual form ("::1" and "0:0:0:0:0:0:0:1" equal; "::ffff:10.0.0.1" as 10.0.0.1). */
export function canonicalIp(ip: string): string | undefined {
  const v = isIP(ip);
  if (v === 0) return undefined;
  try {
    const host = new URL(v === 6 ? `http://[${ip}]/` : `http://${ip}/`).hostname.replace(/^\[|\]$/g, '');
    const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
    if (mapped) {
      const hi = parseInt(mapped[1], 16);
      const lo = parseInt(mapped[2], 16);
      return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
    }
    return host;
  } catch {
    return undefined;
  }
}

/** Is `ip` inside one of the CIDRs ("10.0.0.0/8", "fd00::/8")? Malformed CIDRs match nothing. */
export function inCidrs(ip: string, cidrs: readonly string[]): boolean {
  const c = canonicalIp(ip);
  if (!c) return false;
  const family = isIP(c) === 6 ? 'ipv6' : 'ipv4';
  const list = new BlockList();
  for (const cidr of cidrs) {
    const m = /^([^/]+)\/(\d{1,3})$/.exec(cidr.trim());
    const net = m && canonicalIp(m[1]);
    if (!m || !net) continue;
    const netFamily = isIP(net) === 6 ? 'ipv6' : 'ipv4';
    const bits = Number(m[2]);
    if (bits > (netFamily === 'ipv6' ? 128 : 32)) continue;
    list.addSubnet(net, bits, netFamily);
  }
  return list.check(c, family);
}

/** Why a CIDR is not one (for the pool options), or undefined. */
export function cidrProblem(cidr: string): string | undefined {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(cidr);
  const net = m && canonicalIp(m[1]);
  if (!m || !net) return `"${cidr}" is not a CIDR (address/prefix length, e.g. 10.0.0.0/16 or fd00::/64)`;
  if (Number(m[2]) > (isIP(net) === 6 ? 128 : 32)) return `"${cidr}": the prefix length is too long for the address`;
  return undefined;
}

/**
 * Why a kubelet serving certificate may not carry this SAN in this cluster, or undefined: the API server's names and
 * addresses (the Kubernetes names, the SANs of its serving certificates, loopback aside) and the service network.
 * The CA applies it to every kubelet-serving request, approved by anyone; the approver asks it before approving.
 */
export function reservedServingSan(kind: 'DNS' | 'IP', value: string, r: ServingReservations | undefined): string | undefined {
  if (kind === 'DNS') {
    const d = value.toLowerCase().replace(/\.$/, '');
    if (KUBERNETES_API_NAMES.includes(d) || d.startsWith('kubernetes.default.svc.')) return `DNS ${value} is a name of the cluster's API server`;
    if (r?.dns.some((n) => n.toLowerCase() === d && n.toLowerCase() !== 'localhost')) return `DNS ${value} is a name of the cluster's API server`;
    return undefined;
  }
  const ip = canonicalIp(value);
  if (!ip) return `IP ${value} is not an IP address`;
  if (!isLoopback(ip) && r?.ip.some((a) => canonicalIp(a) === ip)) return `IP ${value} is an address of the cluster's API server`;
  const services = r?.serviceCidrs ?? DEFAULT_SERVICE_CIDRS;
  if (inCidrs(ip, services)) return `IP ${value} is in the service network (${services.join(', ')})`;
  return undefined;
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
      const n = nodeOfSubject(subject);
      return 'problem' in n ? n.problem : undefined;
    }
    case 'user': {
      if (claimsNodeIdentity(subject))
        return `node identities (CN ${NODE_USER_PREFIX}*, O ${NODES_GROUP}) must use signer ${SIGNER_KUBELET_CLIENT}`;
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

/** What the certificate carries for the asked usages, or why the signer refuses them (Kubernetes: SignerValidationFailure). */
export function usagesOf(profile: SignerProfile, asked: readonly string[] | undefined): { keyUsage: KeyUsage[]; extKeyUsage: ExtKeyUsage[] } | { problem: string } {
  if (asked === undefined) return { keyUsage: [...profile.keyUsage], extKeyUsage: [...profile.extKeyUsage] };
  const allowed = new Set<string>(profile.usages.allowed);
  const bad = asked.filter((u) => !allowed.has(u));
  if (bad.length) {
    return { problem: `usage${bad.length > 1 ? 's' : ''} ${bad.map((u) => JSON.stringify(u)).join(', ')} not allowed for signer ${profile.name} (allowed: ${profile.usages.allowed.join(', ')})` };
  }
  const missing = profile.usages.required.filter((u) => !asked.includes(u));
  if (missing.length) return { problem: `missing required usage${missing.length > 1 ? 's' : ''} ${missing.map((u) => JSON.stringify(u)).join(', ')} for signer ${profile.name}` };
  const keyUsage = [...new Set(asked.map((u) => USAGE_BITS[u as Usage].keyUsage).filter((k): k is KeyUsage => k !== undefined))];
  const extKeyUsage = [...new Set(asked.map((u) => USAGE_BITS[u as Usage].extKeyUsage).filter((k): k is ExtKeyUsage => k !== undefined))];
  // No keyUsage extension would allow every key usage: a certificate asked for none gets the narrowest TLS needs.
  return { keyUsage: keyUsage.length ? keyUsage : ['digitalSignature'], extKeyUsage };
}

/**
 * Why the CSR's own extensions ask for more than the certificate will carry, or undefined. A request for keyCertSign,
 * or for an extended usage the signer does not issue, is refused by name rather than silently dropped.
 */
function requestedExtensionsProblem(csr: ParsedCsr, keyUsage: KeyUsage[], extKeyUsage: ExtKeyUsage[], signer: string): string | undefined {
  for (const ku of csr.requestedKeyUsage ?? []) {
    if (ku === 'keyCertSign' || ku === 'cRLSign') return `CSR requests key usage ${ku}; no signer issues CA certificates`;
    if (!keyUsage.includes(ku)) return `CSR requests key usage ${ku}, which a certificate of ${signer} with these usages does not carry (it carries ${keyUsage.join(', ')})`;
  }
  const eku = csr.extensions.find((e) => e.oid === OID.extKeyUsage);
  if (eku) {
    let oids: string[];
    let names: ExtKeyUsage[];
    try {
      const d = decodeExtKeyUsage(eku.value, 'certificate request');
      oids = d.oids;
      names = d.usages;
    } catch (e) {
      return (e as Error).message;
    }
    if (oids.includes(OID.anyExtendedKeyUsage)) return `CSR requests extended key usage anyExtendedKeyUsage; no signer issues it`;
    // Usages without a name here (code signing OIDs of other vendors...) are never issued either.
    const unnamed = oids.filter((oid) => !names.some((n) => EKU_OIDS[n] === oid));
    if (unnamed.length) return `CSR requests extended key usage ${unnamed[0]}, which ${signer} does not issue`;
    const extra = names.filter((n) => !extKeyUsage.includes(n));
    if (extra.length) return `CSR requests extended key usage ${extra.join(', ')}, which ${signer} does not issue with these usages (it issues ${extKeyUsage.join(', ') || 'none'})`;
  }
  return undefined;
}

/** Why a kubelet serving certificate for `node` may not carry these SANs, or undefined. */
function servingNamesProblem(node: string, csr: ParsedCsr, r: ServingReservations | undefined): string | undefined {
  for (const d of csr.sans.dns) {
    const reserved = reservedServingSan('DNS', d, r);
    if (reserved) return `${reserved}; a node's serving certificate may not carry it`;
    // Only the node's own name, or a name below it (N.<pool DNS suffix>): never another node's name.
    const lower = d.toLowerCase();
    if (lower !== node && !lower.startsWith(`${node}.`)) return `DNS ${d} is not node ${node}'s name nor a name below it (${node}.<suffix>)`;
  }
  for (const ip of csr.sans.ip) {
    const reserved = reservedServingSan('IP', ip, r);
    if (reserved) return `${reserved}; a node's serving certificate may not carry it`;
  }
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
  if (!profile) {
    const known = PROFILES.map((p) => p.name).join(', ');
    if (!req.signer) return deny(`the request names no signer; name one of the known signers: ${known}`);
    return deny(`unknown signer ${JSON.stringify(req.signer)}; known signers: ${known}`);
  }
  if (!profile.callers.includes(caller.role)) return forbid(`signer ${profile.name} may not be used by ${caller.role} callers`);
  if (req.admin && caller.role !== 'fleet') return forbid('the admin operation is reserved to the fleet (control plane host)');
  if (req.admin && profile.name !== SIGNER_APISERVER_CLIENT) return deny(`the admin operation applies only to ${SIGNER_APISERVER_CLIENT}`);

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
  if (profile.servingNames === 'node') {
    const n = nodeOfSubject(csr.subject);
    const namesProblem = 'node' in n ? servingNamesProblem(n.node, csr, req.reservations) : n.problem;
    if (namesProblem) return deny(namesProblem);
  }
  const usages = usagesOf(profile, req.usages);
  if ('problem' in usages) return deny(usages.problem);

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

  // RSA server keys need keyEncipherment for TLS 1.2 RSA key exchange-era clients; ECDSA and Ed25519 do not. Only when
  // the caller named no usages: asked-for usages are issued exactly as asked.
  const keyUsage: KeyUsage[] =
    req.usages === undefined && csr.keyAlgorithm.kind === 'rsa' && usages.extKeyUsage.includes('serverAuth') ? [...usages.keyUsage, 'keyEncipherment'] : usages.keyUsage;
  const extensionsProblem = requestedExtensionsProblem(csr, keyUsage, usages.extKeyUsage, profile.name);
  if (extensionsProblem) return deny(extensionsProblem);

  const subject: Name = csr.subject.map((a) => ({ type: a.type, value: a.value }));
  const template: CertificateTemplate = {
    subject,
    notBefore: new Date(Math.max(nowMs - BACKDATE_MS, 0)),
    notAfter: new Date(notAfterMs),
    publicKey: csr.publicKey,
    isCA: false,
    keyUsage,
    extKeyUsage: usages.extKeyUsage,
    sans: profile.sans === 'none' ? undefined : { dns: csr.sans.dns, ip: csr.sans.ip },
  };
  return { allow: true, profile, template };
}
