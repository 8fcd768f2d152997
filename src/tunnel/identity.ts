// Which node a verified agent certificate speaks for: the kubelet client identity, by the one node-identity rule (src/pki/node-identity.ts).
import type { PeerCertificate } from 'node:tls';
import { NODES_GROUP, NODE_USER_PREFIX, isNodeName, nodeOfSubject, type Name } from '../pki/index.js';
import { values } from './protocol.js';

export const NODE_PREFIX = NODE_USER_PREFIX;
export { NODES_GROUP, isNodeName };

/** The subject Node's TLS reports (attribute → value or values) as a Name, every attribute kept. */
function subjectName(peer: Pick<PeerCertificate, 'subject'>): Name {
  const subject = (peer.subject ?? {}) as unknown as Record<string, string | string[] | undefined>;
  return Object.entries(subject).flatMap(([type, v]) => values(v).map((value) => ({ type, value })));
}

/** The node name of a kubelet client certificate's subject, or null when the subject is not a node's. */
export function nodeNameOf(peer: Pick<PeerCertificate, 'subject'>): string | null {
  if (!peer.subject) return null;
  const n = nodeOfSubject(subjectName(peer));
  return 'node' in n ? n.node : null;
}

/** Why the subject is not a node's (for the refusal message), or undefined when it is one. */
export function nodeIdentityProblem(peer: Pick<PeerCertificate, 'subject'>): string | undefined {
  const n = nodeOfSubject(subjectName(peer));
  return 'problem' in n ? n.problem : undefined;
}

/** The subject as text for messages, e.g. `CN=admin, O=system:masters`; control characters escaped. */
export function describeSubject(peer: Pick<PeerCertificate, 'subject'>): string {
  return subjectName(peer)
    .map((a) => `${a.type}=${/[\u0000-\u001f\u007f"\\]/.test(a.value) ? JSON.stringify(a.value) : a.value}`)
    .join(', ');
}
