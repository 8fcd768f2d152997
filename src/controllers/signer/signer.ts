// The CSR signer loop: approved CSRs for the CA's signers go to the CA service; the chain, or its refusal, goes back
// into the CSR; kubelet client certificates are recorded as node credentials for the approver.
//
// Never twice for one CSR: the CSR is read again right before the CA is asked and skipped once it holds a certificate;
// one CSR is never handled twice at the same time; a certificate the CA issued but that could not be written yet is
// kept and written on the next try instead of signing again; after a restart, issued CSRs are skipped.
import { EXTRA_SOURCE_ADDRESS } from '../../apiserver/auth/authenticate.js';
import {
  GROUP_BOOTSTRAPPERS,
  SIGNER_KUBELET_CLIENT,
  isIssued,
  type CertificateSigningRequest,
  type CsrRegistry,
  type ObjectEvent,
} from '../../apiserver/index.js';
import type { IssuedCertificate } from '../../ca/api.js';
import { parseCertificates } from '../../pki/index.js';
import type { Store } from '../../store/client.js';
import type { Clock } from '../../util/clock.js';
import { TrustplaneError } from '../../util/errors.js';
import type { Logger } from '../../util/log.js';
import { runInformer, type Informer } from '../loop/informer.js';
import { WorkQueue, type WorkResult } from '../loop/work-queue.js';
import { NodeCredentialCache, recordNodeCredential } from '../node-credentials.js';
import { subjectNode } from '../node-identity.js';
import { CA_RETRY_MS, SIGNING_NOTE_ANNOTATION, caWaitNote, chainPem, classifyCaError, signInputOf, signingAction, type CsrSigningBackend } from './signing.js';

/**
 * What the control plane itself saw of a kubelet client CSR: the pool of the bootstrap token (its group
 * system:bootstrappers:<pool>) and the address the request came from (spec.extra, written by the API server).
 */
export function joinFactsOf(csr: Pick<CertificateSigningRequest, 'spec'>): { pool?: string; address?: string } {
  const group = (csr.spec.groups ?? []).find((g) => g.startsWith(`${GROUP_BOOTSTRAPPERS}:`));
  const address = csr.spec.extra?.[EXTRA_SOURCE_ADDRESS]?.[0];
  return { ...(group ? { pool: group.slice(GROUP_BOOTSTRAPPERS.length + 1) } : {}), ...(address ? { address } : {}) };
}

export interface SignerDeps {
  csrs: CsrRegistry;
  store: Store;
  ca: CsrSigningBackend;
  clock: Clock;
  log: Logger;
  /** CSRs handled at the same time (each one by itself). */
  concurrency: number;
  retryBaseMs: number;
  retryMaxMs: number;
}

export class CsrSigner {
  private readonly queue: WorkQueue;
  private informer?: Informer;
  /** Issued by the CA but not yet written, by CSR name: written on the next try rather than signed again. */
  private readonly unwritten = new Map<string, { uid: string; issued: IssuedCertificate }>();
  /** CSRs (name → uid) whose kubelet client credential this signer recorded as it wrote the certificate: their issued event needs no second look. */
  private readonly recorded = new Map<string, string>();
  /** The node credential records this signer last wrote: its next write for a node starts from there. */
  private readonly credentials = new NodeCredentialCache();
  /** CSRs the CA service could not sign, tried again together every CA_RETRY_MS (one batch call), whatever their backoff. */
  private readonly waitingForCa = new Set<string>();
  private caRetry: NodeJS.Timeout | undefined;

  constructor(private readonly d: SignerDeps) {
    this.queue = new WorkQueue((name) => this.handle(name), { name: 'csr-signer', concurrency: d.concurrency, retryBaseMs: d.retryBaseMs, retryMaxMs: d.retryMaxMs, log: d.log });
  }

  start(): void {
    const enqueue = (csr: CertificateSigningRequest) => {
      const name = csr.metadata.name;
      const action = signingAction(csr).action;
      if (action === 'record' && this.recorded.get(name) === csr.metadata.uid) {
        this.recorded.delete(name);
        return;
      }
      if (action !== 'skip') this.queue.add(name);
    };
    this.informer = runInformer(
      'csr-signer',
      this.d.csrs,
      {
        onList: (items) => {
          this.recorded.clear();
          items.forEach(enqueue);
        },
        onEvent: (ev: ObjectEvent<CertificateSigningRequest>) => {
          if (ev.type !== 'DELETED') enqueue(ev.object);
          else this.recorded.delete(ev.object.metadata.name);
        },
      },
      { log: this.d.log, retryBaseMs: this.d.retryBaseMs, retryMaxMs: this.d.retryMaxMs },
    );
  }

  synced(): Promise<void> {
    return this.informer?.synced ?? Promise.resolve();
  }

  async stop(): Promise<void> {
    clearTimeout(this.caRetry);
    this.caRetry = undefined;
    await this.informer?.stop();
    await this.queue.stop();
  }

  private async handle(name: string): Promise<WorkResult> {
    const { csrs, ca, log } = this.d;
    const csr = await csrs.objects.tryGet(name);
    const uid = csr?.metadata.uid ?? '';
    // A certificate kept for a CSR that is gone, or was replaced under the same name, is for no one.
    if (this.unwritten.get(name)?.uid !== uid) this.unwritten.delete(name);
    if (!csr) return 'done';
    const action = signingAction(csr);
    if (action.action === 'record') {
      await this.recordFromCsr(csr);
      return 'done';
    }
    if (action.action === 'skip') return 'done';
    if (action.action === 'note') {
      await this.note(csr, action.message);
      return 'done';
    }

    let issued = this.unwritten.get(name)?.issued;
    if (!issued) {
      try {
        issued = await ca.sign(signInputOf(csr));
      } catch (e) {
        const outcome = classifyCaError(e);
        if (outcome.outcome === 'retry') {
          log.warn({ csr: name, err: outcome.message }, 'CA service did not sign; trying again later');
          // Said on the CSR, so the node waiting on it (and kubectl describe csr) can tell why; written once per cause.
          const waiting = caWaitNote(outcome.message);
          if (csr.metadata.annotations?.[SIGNING_NOTE_ANNOTATION] !== waiting) await this.note(csr, waiting);
          this.retryWhenCaBack(name);
          return 'retry';
        }
        await this.markFailed(csr, outcome.reason, outcome.message);
        return 'done';
      }
      this.unwritten.set(name, { uid, issued });
    }
    // Noted before the write, whose own event can come in before the write's answer: this handler records the
    // credential itself (see start()); if it does not get that far, the event or a retry brings the CSR back.
    const recording = csr.spec.signerName === SIGNER_KUBELET_CLIENT;
    if (recording) this.recorded.set(name, uid);
    let recordedHere = false;
    try {
      const written = await this.write(name, uid, issued, csr);
      if (written === 'retry') return 'retry';
      this.unwritten.delete(name);
      if (written === 'written') {
        log.info({ csr: name, signer: csr.spec.signerName, requester: csr.spec.username, serial: issued.serial, notAfter: issued.notAfter }, 'certificate issued');
        if (recording) {
          await this.record(csr, issued.serial, issued.notAfter, issued.generation);
          recordedHere = true;
        }
      }
      return 'done';
    } finally {
      if (recording && !recordedHere) {
        // Not recorded here after all: let the event through, or, if it was already let go, look again now.
        if (this.recorded.get(name) === uid) this.recorded.delete(name);
        else this.queue.add(name);
      }
    }
  }

  /**
   * Writes the chain into the CSR it was signed for; 'gone' when that CSR was deleted, replaced or issued meanwhile.
   * The first try writes against `signed`, the CSR as read before signing: unchanged since (the usual case), the
   * compare-and-swap succeeds without reading it again; changed, it is read and judged below.
   */
  private async write(name: string, uid: string, issued: IssuedCertificate, signed: CertificateSigningRequest): Promise<'written' | 'gone' | 'retry'> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const cur = attempt === 0 ? signed : await this.d.csrs.objects.tryGet(name);
      if (!cur || cur.metadata.uid !== uid || isIssued(cur) || signingAction(cur).action !== 'sign') {
        this.d.log.warn({ csr: name, serial: issued.serial }, 'the CSR changed while the CA was signing (deleted, denied or issued); certificate not written');
        return 'gone';
      }
      try {
        await this.d.csrs.setCertificate(name, chainPem(issued), { resourceVersion: cur.metadata.resourceVersion }, cur);
        return 'written';
      } catch (e) {
        // Changed or deleted meanwhile: the next try reads it and judges again.
        if (!(e instanceof TrustplaneError && (e.reason === 'Conflict' || e.reason === 'NotFound'))) throw e;
      }
    }
    return 'retry';
  }

  /**
   * The work queue's backoff grows to minutes, and a CA down that long would keep a join waiting minutes after it is
   * back: CSRs that failed for the CA are tried again every few seconds instead, all in one batch to the CA service.
   */
  private retryWhenCaBack(name: string): void {
    this.waitingForCa.add(name);
    this.caRetry ??= setTimeout(() => {
      this.caRetry = undefined;
      const names = [...this.waitingForCa];
      this.waitingForCa.clear();
      for (const n of names) this.queue.add(n);
    }, CA_RETRY_MS);
    this.caRetry.unref?.();
  }

  /** Writes why an approved CSR waits (no signer serves it); a conflict means the next event brings it back. */
  private async note(csr: CertificateSigningRequest, message: string): Promise<void> {
    try {
      await this.d.csrs.update({ ...csr, metadata: { ...csr.metadata, annotations: { ...csr.metadata.annotations, [SIGNING_NOTE_ANNOTATION]: message } } });
      this.d.log.info({ csr: csr.metadata.name, signer: csr.spec.signerName }, `approved, but waits: ${message}`);
    } catch (e) {
      if (!(e instanceof TrustplaneError && (e.reason === 'Conflict' || e.reason === 'NotFound'))) throw e;
    }
  }

  private async markFailed(csr: CertificateSigningRequest, reason: string, message: string): Promise<void> {
    try {
      await this.d.csrs.fail(csr.metadata.name, reason, message, { resourceVersion: csr.metadata.resourceVersion }, csr);
      this.d.log.info({ csr: csr.metadata.name, signer: csr.spec.signerName, requester: csr.spec.username, reason }, `CA refused: ${message}`);
    } catch (e) {
      // Changed meanwhile: the next event brings it back, and it is judged again from what it is then.
      if (!(e instanceof TrustplaneError && (e.reason === 'Conflict' || e.reason === 'NotFound'))) throw e;
    }
  }

  /** After a restart (or a crash between writing the certificate and the record): record what the CSR holds. */
  private async recordFromCsr(csr: CertificateSigningRequest): Promise<void> {
    let leaf;
    try {
      leaf = parseCertificates(Buffer.from(csr.status!.certificate!, 'base64').toString('latin1'))[0];
    } catch {
      return;
    }
    if (!leaf) return;
    // The generation comes from the issuer's key id (0: unknown, when the backend cannot tell); its notBefore (issue time less the CA's backdating) stands
    // in for the issue time, so that an old certificate never passes for the newest.
    await this.record(csr, leaf.serialHex, leaf.notAfter.toISOString(), this.d.ca.generationOf?.(leaf) ?? 0, leaf.notBefore);
  }

  private async record(csr: CertificateSigningRequest, serial: string, notAfter: string, generation: number, issuedAt?: Date): Promise<void> {
    let node: string | undefined;
    try {
      const s = subjectNode(this.d.csrs.requestOf(csr));
      if ('node' in s) node = s.node;
    } catch {
      node = undefined;
    }
    if (!node) return;
    const now = this.d.clock.now();
    const { pool, address } = joinFactsOf(csr);
    const entry = { serial, notAfter, generation, issuedAt: (issuedAt ?? now).toISOString(), csr: csr.metadata.name, ...(pool ? { pool } : {}), ...(address ? { address } : {}) };
    await recordNodeCredential(this.d.store, node, entry, now, this.credentials);
  }
}
