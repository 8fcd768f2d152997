// Who is asking: a client certificate that chains to the cluster root CA (checked once per connection and CA), else a bootstrap token.
import type { IncomingMessage } from 'node:http';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import { claimsNodeIdentity, commonName, nodeOfSubject, organizations, parseCertificate, parseCertificates, verifyChain, type ParsedCertificate } from '../../pki/index.js';
import type { Store } from '../../store/client.js';
import type { Clock } from '../../util/clock.js';
import { invalid } from '../../util/errors.js';
import { clientIdentityOf, plainAddress, type ClientIdentity, type ObservedClients } from '../../tls/observed-clients.js';
import { GROUP_AUTHENTICATED, GROUP_NODES, type UserInfo } from '../types.js';
import { BootstrapTokenCache } from './bootstrap-token-cache.js';
import { authenticateBootstrapToken, type BootstrapTokenInfo } from './bootstrap-tokens.js';

/**
 * spec.extra key (on users that are nodes or bootstrap tokens, and so on their CSRs) holding the address the request
 * came from, as this server saw the connection: a fact the control plane observed, which the client cannot write
 * (the CSR registry takes spec.extra from the authenticated user only). The approver certifies node IPs from it.
 */
export const EXTRA_SOURCE_ADDRESS = 'trustplane.io/source-address';

/** The peer address of a connection in its plain form (an IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d). */
function sourceAddressOf(req: IncomingMessage): string | undefined {
  return plainAddress(req.socket?.remoteAddress) || undefined;
}

/** The user with the observed source address in extra: for nodes and bootstrap tokens, whose CSRs the approver judges. */
function withSource(user: UserInfo, req: IncomingMessage): UserInfo {
  const source = sourceAddressOf(req);
  return source ? { ...user, extra: { ...user.extra, [EXTRA_SOURCE_ADDRESS]: [source] } } : user;
}

export interface Authenticated {
  user: UserInfo;
  via: 'certificate' | 'bootstrap-token';
  /** The bootstrap token used, when that is how the user authenticated. */
  token?: BootstrapTokenInfo;
}

interface Verdict {
  generation: number;
  user: UserInfo | null;
  /** The verdict holds until then (ms); a certificate on the path expires at that time. */
  until: number;
  /** Why a presented certificate was not accepted. */
  refused?: string;
  /** It chains to a retired generation of the root CA: its holder must get new credentials. */
  retired?: boolean;
  /** Who the accepted certificate speaks for and which CA key issued it, for the record of observed clients. */
  identity?: ClientIdentity;
}

export function parseTrustBundle(pem: string): ParsedCertificate[] {
  const roots = parseCertificates(pem);
  if (roots.length === 0) throw invalid('the client CA bundle holds no certificate');
  return roots;
}

/** The client's certificates as sent: leaf first, then whatever chain it presented. */
/**
 * The TLS connection a request came on. On HTTP/2, `req.socket` is a new proxy per stream; the session's socket is one
 * per connection, so the certificate verdict is cached per connection on both protocols.
 */
function connectionOf(req: IncomingMessage): TLSSocket {
  const session = (req as IncomingMessage & { stream?: { session?: { socket?: unknown } } }).stream?.session;
  return (session?.socket ?? req.socket) as TLSSocket;
}

function peerChain(socket: TLSSocket): Buffer[] {
  const leaf = socket.getPeerCertificate(true) as DetailedPeerCertificate | undefined;
  if (!leaf || !leaf.raw) return [];
  const out: Buffer[] = [];
  const seen = new Set<DetailedPeerCertificate>();
  for (let c: DetailedPeerCertificate | undefined = leaf; c && c.raw && !seen.has(c) && out.length < 10; c = c.issuerCertificate) {
    seen.add(c);
    out.push(c.raw);
  }
  return out;
}

export class Authenticator {
  private roots: ParsedCertificate[];
  private retired: ParsedCertificate[] = [];
  private generation = 0;
  private readonly verdicts = new WeakMap<TLSSocket, Verdict>();
  private readonly tokens: BootstrapTokenCache;

  constructor(
    clientCa: string,
    store: Store,
    private readonly clock: Clock,
    /** True for the serial (lower-case hex) of a revoked client certificate. */
    private readonly isRevoked?: (serialHex: string) => boolean,
    /** Where every request with an accepted client certificate is recorded (which CA generation its clients present). */
    private readonly observed?: ObservedClients,
  ) {
    this.roots = parseTrustBundle(clientCa);
    this.tokens = new BootstrapTokenCache(store);
  }

  /** Stops watching the token records. */
  close(): void {
    this.tokens.stop();
  }

  /** New trust anchors; every connection's certificate is judged again against them on its next request. */
  setClientCa(pem: string): void {
    this.roots = parseTrustBundle(pem);
    this.generation++;
  }

  async authenticate(req: IncomingMessage): Promise<Authenticated | null> {
    const verdict = this.certificateVerdict(connectionOf(req));
    const fromCert = verdict.user;
    if (fromCert && verdict.identity) this.observed?.see(verdict.identity, 'apiserver', sourceAddressOf(req) ?? '', this.clock.now().getTime());
    if (fromCert) return { user: fromCert.groups.includes(GROUP_NODES) ? withSource(fromCert, req) : fromCert, via: 'certificate' };
    const h = req.headers.authorization;
    if (typeof h === 'string') {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
      if (m) {
        const t = await authenticateBootstrapToken(this.tokens, m[1], this.clock);
        if (t) return { user: withSource({ ...t.user, groups: [...t.user.groups, GROUP_AUTHENTICATED] }, req), via: 'bootstrap-token', token: t.token };
      }
    }
    return null;
  }

  /** Why the request's client certificate, if it presented one, was not accepted (for the 401 message). */
  certificateRefusal(req: IncomingMessage): { why: string; retired: boolean } | undefined {
    const v = this.verdicts.get(connectionOf(req));
    return v?.refused ? { why: v.refused, retired: !!v.retired } : undefined;
  }

  /** The revoked set changed: every connection's certificate is judged again on its next request. */
  revocationsChanged(): void {
    this.generation++;
  }

  /** Generations of the root CA retired by a completed rotation: their certificates are refused with a hint. */
  setRetiredCa(pem: string | undefined): void {
    this.retired = pem ? parseTrustBundle(pem) : [];
    this.generation++;
  }

  private certificateVerdict(socket: TLSSocket): Verdict {
    const now = this.clock.now().getTime();
    const cached = this.verdicts.get(socket);
    if (cached && cached.generation === this.generation && now <= cached.until) return cached;
    const v = this.judge(socket);
    this.verdicts.set(socket, v);
    return v;
  }

  private judge(socket: TLSSocket): Verdict {
    const none = (until = Infinity): Verdict => ({ generation: this.generation, user: null, until });
    if (typeof socket.getPeerCertificate !== 'function') return none();
    // The leaf alone first: it chains straight to a root unless a rotation put a cross-certificate in between, and the
    // detailed chain (every certificate as a JS object) costs more than the verification itself.
    const leafDer = socket.getPeerCertificate(false)?.raw;
    if (!leafDer) return none();
    const at = this.clock.now();
    let path: ParsedCertificate[];
    try {
      try {
        path = verifyChain(parseCertificate(leafDer), [], this.roots, { at, purpose: 'clientAuth' });
      } catch {
        const [leaf, ...rest] = peerChain(socket).map((d) => parseCertificate(d));
        path = verifyChain(leaf, rest, this.roots, { at, purpose: 'clientAuth' });
      }
    } catch (e) {
      const refused: Verdict = { ...none(), refused: (e as Error).message };
      if (this.retired.length === 0) return refused;
      try {
        const [leaf, ...rest] = peerChain(socket).map((d) => parseCertificate(d));
        verifyChain(leaf, rest, this.retired, { at, purpose: 'clientAuth' });
        return { ...refused, retired: true };
      } catch {
        return refused;
      }
    }
    const leaf = path[0];
    if (this.isRevoked?.(leaf.serialHex)) return { ...none(), refused: `certificate ${leaf.serialHex} is revoked` };
    let cn: string | undefined;
    try {
      cn = commonName(leaf.subject);
    } catch {
      return none();
    }
    if (!cn) return none();
    // A certificate that claims to be a node's must be one by the one rule; anything else would be a node to some
    // checks and not to others.
    if (claimsNodeIdentity(leaf.subject)) {
      const n = nodeOfSubject(leaf.subject);
      if ('problem' in n) return { ...none(), refused: `the certificate claims a node identity, but ${n.problem}` };
    }
    const until = Math.min(...path.map((c) => c.notAfter.getTime()));
    return { generation: this.generation, user: { name: cn, groups: [...organizations(leaf.subject), GROUP_AUTHENTICATED] }, until, identity: clientIdentityOf(leaf) };
  }
}
