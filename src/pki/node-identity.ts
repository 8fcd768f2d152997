// The one node-identity rule: which node a certificate subject, a CSR subject or an authenticated user speaks for.
//
// The strictest reading of what Kubernetes asks in its several places: the CSR API and signers want O exactly
// ["system:nodes"] and a CN "system:node:<name>" with a name; the node authorizer wants the user "system:node:<name>"
// in the group system:nodes; a Node's name is a DNS-1123 subdomain. Here all of them at once, everywhere: CN exactly
// "system:node:<DNS-1123 subdomain of at most 253 characters>", exactly one O and it is "system:nodes", no other
// subject attribute; for a user, the same name and no group but system:nodes (and system:authenticated, which every
// authenticated user has). Pure: no imports from above the PKI core.
import type { Name } from './types.js';

export const NODE_USER_PREFIX = 'system:node:';
export const NODES_GROUP = 'system:nodes';
/** Every authenticated user is in it; it says nothing about being a node. */
const AUTHENTICATED_GROUP = 'system:authenticated';
/** Kubernetes' limit for a DNS-1123 subdomain (and so a Node's name). */
export const MAX_NODE_NAME_LENGTH = 253;

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export type NodeIdentity = { node: string } | { problem: string };

/** Control characters and quotes shown as escapes, so a hostile name cannot forge a log line or a terminal. */
export function quoteName(s: string): string {
  return JSON.stringify(s);
}

/** Why `name` cannot be a node's name (a DNS-1123 subdomain, lower case, at most 253 characters), or undefined. */
export function nodeNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'the node name is empty';
  if (name.length > MAX_NODE_NAME_LENGTH) return `the node name is ${name.length} characters long (at most ${MAX_NODE_NAME_LENGTH})`;
  if (!DNS1123_SUBDOMAIN.test(name)) {
    return `node name ${quoteName(name)} is not a DNS-1123 subdomain (lower-case letters, digits, "-" and ".", starting and ending with a letter or digit)`;
  }
  return undefined;
}

export function isNodeName(name: string): boolean {
  return nodeNameProblem(name) === undefined;
}

/** The node a user name "system:node:<name>" names, or why it names none. */
function nodeOfUserName(cn: string): NodeIdentity {
  if (!cn.startsWith(NODE_USER_PREFIX)) return { problem: `the common name ${quoteName(cn)} is not "${NODE_USER_PREFIX}<node name>"` };
  const node = cn.slice(NODE_USER_PREFIX.length);
  const problem = nodeNameProblem(node);
  return problem ? { problem } : { node };
}

/** The node a subject (a certificate's or a CSR's) names: CN "system:node:<name>", O exactly "system:nodes", nothing else. */
export function nodeOfSubject(subject: Name): NodeIdentity {
  const cns = subject.filter((a) => a.type === 'CN').map((a) => a.value);
  const os = subject.filter((a) => a.type === 'O').map((a) => a.value);
  const others = subject.filter((a) => a.type !== 'CN' && a.type !== 'O').map((a) => a.type);
  if (cns.length !== 1) return { problem: `the subject must hold exactly one common name "${NODE_USER_PREFIX}<node name>" (it holds ${cns.length})` };
  const named = nodeOfUserName(cns[0]);
  if ('problem' in named) return named;
  if (os.length !== 1 || os[0] !== NODES_GROUP) return { problem: `the subject organization must be exactly ["${NODES_GROUP}"] (it is ${JSON.stringify(os)})` };
  if (others.length) return { problem: `a node's subject holds only CN and O (this one also holds ${others.join(', ')})` };
  return named;
}

/** Does the subject claim to be a node's at all (CN prefix or the nodes group)? Such a subject must then pass nodeOfSubject. */
export function claimsNodeIdentity(subject: Name): boolean {
  return subject.some((a) => (a.type === 'CN' && a.value.startsWith(NODE_USER_PREFIX)) || (a.type === 'O' && a.value === NODES_GROUP));
}

/**
 * The node an authenticated user is: name "system:node:<name>" in group system:nodes and no other group (beyond
 * system:authenticated). Undefined for a user who does not claim to be a node; a problem for one who claims it badly.
 */
export function nodeOfUser(user: { name: string; groups: readonly string[] }): NodeIdentity | undefined {
  const inGroup = user.groups.includes(NODES_GROUP);
  const times = user.groups.filter((g) => g === NODES_GROUP).length;
  if (!user.name.startsWith(NODE_USER_PREFIX) && !inGroup) return undefined;
  if (!inGroup) return { problem: `user ${quoteName(user.name)} is not in the group ${NODES_GROUP}` };
  const named = nodeOfUserName(user.name);
  if ('problem' in named) return named;
  if (times !== 1) return { problem: `a node is in the group ${NODES_GROUP} once (this user is in it ${times} times)` };
  const extra = user.groups.filter((g) => g !== NODES_GROUP && g !== AUTHENTICATED_GROUP);
  if (extra.length) return { problem: `a node is in no group but ${NODES_GROUP} (this user is also in ${extra.map(quoteName).join(', ')})` };
  return named;
}

/** The node name of a user, when the user is one by the rule above. */
export function nodeNameOfUser(user: { name: string; groups: readonly string[] }): string | undefined {
  const n = nodeOfUser(user);
  return n && 'node' in n ? n.node : undefined;
}
