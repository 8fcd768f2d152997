// The node a kubelet certificate request speaks for, by the one node-identity rule (src/pki/node-identity.ts).
import { nodeOfSubject, type NodeIdentity, type ParsedCsr } from '../pki/index.js';

/** The node a request's subject names, or why it names none (the CA's node profile asks the same of the subject). */
export function subjectNode(request: Pick<ParsedCsr, 'subject'>): NodeIdentity {
  return nodeOfSubject(request.subject);
}
