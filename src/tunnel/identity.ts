// Which node a verified agent certificate speaks for: the kubelet client identity, CN system:node:<name> in O system:nodes.
import type { PeerCertificate } from 'node:tls';
import { values } from './protocol.js';

export const NODE_PREFIX = 'system:node:';
export const NODES_GROUP = 'system:nodes';

// A Kubernetes node name is a DNS-1123 subdomain.
const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function isNodeName(name: string): boolean {
  return name.length > 0 && name.length <= 253 && NODE_NAME.test(name);
}

/** The node name of a kubelet client certificate's subject, or null when the subject is not a node's. */
export function nodeNameOf(peer: Pick<PeerCertificate, 'subject'>): string | null {
  const subject = peer.subject as unknown as Record<string, string | string[] | undefined> | undefined;
  if (!subject) return null;
  const cns = values(subject.CN);
  if (cns.length !== 1 || !cns[0].startsWith(NODE_PREFIX)) return null;
  if (!values(subject.O).includes(NODES_GROUP)) return null;
  const name = cns[0].slice(NODE_PREFIX.length);
  return isNodeName(name) ? name : null;
}

/** The subject as text for messages, e.g. `CN=admin, O=system:masters`. */
export function describeSubject(peer: Pick<PeerCertificate, 'subject'>): string {
  const subject = (peer.subject ?? {}) as unknown as Record<string, string | string[] | undefined>;
  return Object.entries(subject)
    .flatMap(([k, v]) => values(v).map((x) => `${k}=${x}`))
    .join(', ');
}
