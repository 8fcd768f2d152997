// The node a kubelet certificate request speaks for: "CN=system:node:<name>, O=system:nodes" and nothing else.
import { GROUP_NODES, NODE_USER_PREFIX } from '../apiserver/index.js';
import type { ParsedCsr } from '../pki/index.js';
import { isNodeName } from './node-credentials.js';

/** The node a request's subject names, or why it names none (the CA's node profile asks the same of the subject). */
export function subjectNode(request: Pick<ParsedCsr, 'subject'>): { node: string } | { problem: string } {
  const cns = request.subject.filter((a) => a.type === 'CN').map((a) => a.value);
  const os = request.subject.filter((a) => a.type === 'O').map((a) => a.value);
  const others = request.subject.filter((a) => a.type !== 'CN' && a.type !== 'O');
  if (cns.length !== 1 || !cns[0].startsWith(NODE_USER_PREFIX)) return { problem: `the subject common name is not "${NODE_USER_PREFIX}<node name>"` };
  const node = cns[0].slice(NODE_USER_PREFIX.length);
  if (!isNodeName(node)) return { problem: `"${node}" is not a valid node name` };
  if (os.length !== 1 || os[0] !== GROUP_NODES) return { problem: `the subject organization is not exactly "${GROUP_NODES}"` };
  if (others.length) return { problem: `the subject may hold only CN and O (it has ${others.map((a) => a.type).join(', ')})` };
  return { node };
}
