// What a server saw of its authenticated clients: per client certificate's user, groups and issuing CA key, the last time
// and address it was seen. Bounded, and it holds no key material (the issuer's key id is a digest of a public key).
// Every server that takes client certificates records here; the fleet turns the issuer key ids into generations.
import type { ParsedCertificate } from '../pki/types.js';
import { commonName, organizations } from '../pki/name.js';
import { LruMap } from '../util/lru.js';

/** The server kinds that record: the cluster API server, the tunnel server, the etcd v3 API endpoint, the CA service. */
export type ObservingServer = 'apiserver' | 'tunnel' | 'etcd' | 'ca';

/** Who a client certificate speaks for, and which CA key issued it. */
export interface ClientIdentity {
  /** The certificate's CN (the Kubernetes user name). */
  user: string;
  /** Its O attributes (the Kubernetes groups). */
  groups: string[];
  /** Subject key id (lower-case hex) of the CA key that issued it: the leaf's authority key id; '' when it names none. */
  issuerKeyId: string;
}

export interface ClientSighting extends ClientIdentity {
  server: ObservingServer;
  /** When it was last seen (ms since the epoch, the recording server's clock). */
  lastSeenMs: number;
  /** The source address it was last seen from. */
  address: string;
}

/** Nodes are tracked apart: thousands of them must not push the few people and components out of the record. */
const NODE_GROUP = 'system:nodes';
export const DEFAULT_OBSERVED_LIMITS = { nodes: 16_384, others: 1_024 };

/** The identity a verified client certificate speaks for; undefined when it names no single user. */
export function clientIdentityOf(leaf: ParsedCertificate): ClientIdentity | undefined {
  let user: string | undefined;
  try {
    user = commonName(leaf.subject);
  } catch {
    return undefined;
  }
  if (!user) return undefined;
  return { user, groups: organizations(leaf.subject), issuerKeyId: leaf.authorityKeyId?.toString('hex') ?? '' };
}

/** The plain address of a peer (an IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d). */
export function plainAddress(a: string | undefined): string {
  if (!a) return '';
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice('::ffff:'.length) : a;
}

/**
 * One entry per distinct user, issuing key and server kind, the least recently seen dropped first when full. Seeing an
 * entry again updates its time, address and groups.
 */
export class ObservedClients {
  private readonly nodes: LruMap<string, ClientSighting>;
  private readonly others: LruMap<string, ClientSighting>;

  constructor(limits: { nodes: number; others: number } = DEFAULT_OBSERVED_LIMITS) {
    this.nodes = new LruMap(limits.nodes);
    this.others = new LruMap(limits.others);
  }

  see(who: ClientIdentity, server: ObservingServer, address: string, atMs: number): void {
    const key = `${who.user}\u0000${who.issuerKeyId}\u0000${server}`;
    const map = who.groups.includes(NODE_GROUP) ? this.nodes : this.others;
    const known = map.get(key);
    if (known) {
      // A clock stepped back must not make a client look as if it had gone quiet.
      known.lastSeenMs = Math.max(known.lastSeenMs, atMs);
      known.address = address;
      known.groups = who.groups;
      return;
    }
    map.set(key, { user: who.user, groups: who.groups, issuerKeyId: who.issuerKeyId, server, lastSeenMs: atMs, address });
  }

  /** Copies of every entry (plain data: they may cross a thread or the wire). */
  list(): ClientSighting[] {
    return [...this.others.values(), ...this.nodes.values()].map((s) => ({ ...s, groups: [...s.groups] }));
  }

  get size(): number {
    return this.nodes.size + this.others.size;
  }
}
