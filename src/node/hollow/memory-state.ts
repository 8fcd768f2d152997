// A node's state kept in memory: what lets thousands of hollow nodes in one process request certificates without a data dir each.
import { NodeState, type CredentialKind } from '../state.js';

/**
 * The NodeState that `requestCertificate` uses, held in this process: the key of a request in flight lives here until
 * its certificate is issued. Issued credentials are not kept (the caller holds what `requestCertificate` returns), and
 * the directory the base class names is never created or read.
 */
export class MemoryNodeState extends NodeState {
  private readonly pending = new Map<CredentialKind, string>();

  constructor(nodeName: string) {
    super(`/nonexistent/hollow-nodes/${nodeName}`);
  }

  override ensureDirs(): void {}

  override readPendingKey(kind: CredentialKind): string | undefined {
    return this.pending.get(kind);
  }

  override writePendingKey(kind: CredentialKind, keyPem: string): void {
    this.pending.set(kind, keyPem);
  }

  override removePendingKey(kind: CredentialKind): void {
    this.pending.delete(kind);
  }

  override writeCredential(): void {}
}
