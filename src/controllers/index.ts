// The CSR control loops of one cluster — approver, signer, CSR cleaner, bootstrap token cleaner — started and stopped together.
import { CsrRegistry, NodeRegistry, type Registries } from '../apiserver/index.js';
import type { ServingReservations } from '../ca/profiles.js';
import type { Store } from '../store/client.js';
import { systemClock, type Clock } from '../util/clock.js';
import { silentLogger, type Logger } from '../util/log.js';
import { CsrApprover } from './approver/approver.js';
import { CsrCleaner } from './cleaner/cleaner.js';
import { CsrSigner } from './signer/signer.js';
import type { CsrSigningBackend } from './signer/signing.js';
import { BootstrapTokenCleaner } from './token-cleaner/token-cleaner.js';

export type { CsrSigningBackend } from './signer/signing.js';
export { CA_SIGNERS, FAILED_REASON, SIGNING_NOTE_ANNOTATION, unservedSignerNote, chainPem, classifyCaError, signInputOf, signingAction, type CaOutcome, type SigningAction } from './signer/signing.js';
export { APPROVAL_NOTE_ANNOTATION, APPROVED_REASON, canonicalIp, decideApproval, type ApprovalFacts, type ApprovalRule, type ApprovalVerdict, type ServingFacts } from './approver/approval.js';
export { NODE_POOL_PREFIX, checkPoolServing, readNodePoolPolicy, type NodePoolPolicy, type NodePoolServing } from './node-pool-policy.js';
export {
  APPROVED_EXPIRATION_MS,
  DENIED_EXPIRATION_MS,
  FAILED_EXPIRATION_MS,
  PENDING_EXPIRATION_MS,
  retentionVerdict,
  type RetentionVerdict,
} from './cleaner/retention.js';
export { expiredTokens } from './token-cleaner/expiry.js';
export { subjectNode } from './node-identity.js';
export * from './node-credentials.js';
export { CsrApprover, CsrSigner, CsrCleaner, BootstrapTokenCleaner };

export interface ControllerTuning {
  /** CSR cleaner pass interval. Kubernetes: 1 hour. */
  cleanerIntervalMs: number;
  /** Bootstrap token cleaner pass interval. */
  tokenCleanerIntervalMs: number;
  /** Undecided kubelet CSRs are looked at again this often (a credential expired, a Node reported its addresses). */
  approverResyncMs: number;
  /** CSRs the signer handles at the same time. */
  signerConcurrency: number;
  /** Retries (CA unavailable, store unreachable, write conflicts): base·2^n, at most max. */
  retryBaseMs: number;
  retryMaxMs: number;
}

export const DEFAULT_TUNING: ControllerTuning = {
  cleanerIntervalMs: 10 * 60_000,
  tokenCleanerIntervalMs: 60_000,
  approverResyncMs: 5 * 60_000,
  signerConcurrency: 32,
  retryBaseMs: 1000,
  retryMaxMs: 5 * 60_000,
};

export interface ControllersOptions {
  cluster: string;
  store: Store;
  /** The registries over `store` the API server uses too (one watch per resource between them); else made here. */
  registries?: Pick<Registries, 'csrs' | 'nodes'>;
  /** The CA service, bound to this cluster. */
  ca: CsrSigningBackend;
  /** Every time-dependent decision reads it. */
  clock?: Clock;
  log?: Logger;
  tuning?: Partial<ControllerTuning>;
  /** The API server's serving names and addresses (and the service network): never approved for a node. The CA refuses them in any case. */
  servingReservations?: ServingReservations;
}

export interface RunningControllers {
  approver: CsrApprover;
  signer: CsrSigner;
  cleaner: CsrCleaner;
  tokenCleaner: BootstrapTokenCleaner;
  /** Resolves once the approver and the signer have listed the CSRs. */
  synced(): Promise<void>;
  /** Stops every loop and waits for work in progress. */
  stop(): Promise<void>;
}

/**
 * Starts the four loops. They list and watch on their own and retry while the store or the CA service is unreachable,
 * so this returns at once; `synced()` says when the first lists are in.
 */
export async function startControllers(o: ControllersOptions): Promise<RunningControllers> {
  const clock = o.clock ?? systemClock;
  const t = { ...DEFAULT_TUNING, ...o.tuning };
  const log = (o.log ?? silentLogger).child({ cluster: o.cluster });
  const csrs = o.registries?.csrs ?? new CsrRegistry(o.store, clock);
  const nodes = o.registries?.nodes ?? new NodeRegistry(o.store, clock);
  const retry = { retryBaseMs: t.retryBaseMs, retryMaxMs: t.retryMaxMs };

  const approver = new CsrApprover({ csrs, nodes, store: o.store, clock, log: log.child({ controller: 'csr-approver' }), resyncMs: t.approverResyncMs, ...retry, ...(o.servingReservations ? { servingReservations: o.servingReservations } : {}) });
  const signer = new CsrSigner({ csrs, store: o.store, ca: o.ca, clock, log: log.child({ controller: 'csr-signer' }), concurrency: t.signerConcurrency, ...retry });
  const cleaner = new CsrCleaner({ csrs, clock, log: log.child({ controller: 'csr-cleaner' }), intervalMs: t.cleanerIntervalMs });
  const tokenCleaner = new BootstrapTokenCleaner({ store: o.store, clock, log: log.child({ controller: 'bootstrap-token-cleaner' }), intervalMs: t.tokenCleanerIntervalMs });
  const loops = [approver, signer, cleaner, tokenCleaner];
  for (const l of loops) l.start();
  log.info('CSR controllers started');

  let stopping: Promise<void> | undefined;
  return {
    approver,
    signer,
    cleaner,
    tokenCleaner,
    synced: () => Promise.all([approver.synced(), signer.synced()]).then(() => undefined),
    stop() {
      stopping ??= Promise.all(loops.map((l) => l.stop())).then(() => log.info('CSR controllers stopped'));
      return stopping;
    },
  };
}
