// The CSR approver loop: watches CSRs (and Nodes, whose addresses serving requests depend on), gathers the facts for
// decideApproval, and writes its verdict. One request at a time, so two bootstrap requests for one node never both pass.
import {
  GROUP_BOOTSTRAPPERS,
  SIGNER_KUBELET_CLIENT,
  SIGNER_KUBELET_SERVING,
  isApproved,
  isDenied,
  isFailed,
  type CertificateSigningRequest,
  type CsrRegistry,
  type Node,
  type NodeRegistry,
  type ObjectEvent,
} from '../../apiserver/index.js';
import { parseCertificates, type ParsedCsr } from '../../pki/index.js';
import type { Store } from '../../store/client.js';
import type { Clock } from '../../util/clock.js';
import { TrustplaneError } from '../../util/errors.js';
import type { Logger } from '../../util/log.js';
import { Mutex } from '../../util/mutex.js';
import { runInformer, type Informer } from '../loop/informer.js';
import { runPeriodically, type Periodic } from '../loop/periodic.js';
import { WorkQueue, type WorkResult } from '../loop/work-queue.js';
import type { ServingReservations } from '../../ca/profiles.js';
import { credentialEntries, getNodeCredential, isNodeName, type NodeCredential } from '../node-credentials.js';
import { subjectNode } from '../node-identity.js';
import { readNodePoolPolicy } from '../node-pool-policy.js';
import { getAttestation, getEnrollment, readShieldedPolicy, requestDigest } from '../../tpm/enrollment.js';
import { TPM_ATTESTOR_USER } from '../../tpm/protocol.js';
import { APPROVAL_NOTE_ANNOTATION, decideApproval, type ApprovalVerdict, type ServingFacts, type ShieldedFacts } from './approval.js';

export interface ApproverDeps {
  csrs: CsrRegistry;
  nodes: NodeRegistry;
  store: Store;
  clock: Clock;
  log: Logger;
  /** Every request still undecided is looked at again this often (credentials expire, Nodes report addresses). */
  resyncMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  /** Called after each verdict is written or found unchanged (tests and metrics). */
  onVerdict?: (name: string, v: ApprovalVerdict) => void;
  /** Requests decided at the same time (for different nodes); default 32. */
  concurrency?: number;
  /** The cluster's reserved serving names beyond the defaults (the API server's SANs); the CA enforces them in any case. */
  servingReservations?: ServingReservations;
}

/** What the approver keeps of each kubelet CSR it has seen. */
interface Known {
  signer: string;
  /** The node the subject names, when it names one. */
  node?: string;
  undecided: boolean;
  /** Approved, not denied or failed, with a certificate still to come or one that expires at this time (ms). */
  /** An approved kubelet client request: valid until its certificate expires (serial once issued). */
  grant?: { until: number; serial?: string };
}

const isKubelet = (s: string | undefined) => s === SIGNER_KUBELET_CLIENT || s === SIGNER_KUBELET_SERVING;

function requestOf(csrs: CsrRegistry, csr: CertificateSigningRequest): ParsedCsr | { error: string } {
  try {
    return csrs.requestOf(csr);
  } catch (e) {
    return { error: (e as Error).message };
  }
}

function issuedCertificate(csr: CertificateSigningRequest): { notAfter?: number; serial?: string } {
  const b64 = csr.status?.certificate;
  if (!b64) return {};
  try {
    const leaf = parseCertificates(Buffer.from(b64, 'base64').toString('latin1'))[0];
    return { notAfter: leaf?.notAfter.getTime(), serial: leaf?.serialHex };
  } catch {
    // An unreadable certificate grants nothing anyone could use.
    return { notAfter: 0 };
  }
}

function know(csrs: CsrRegistry, csr: CertificateSigningRequest): Known {
  const req = requestOf(csrs, csr);
  const subject = 'error' in req ? undefined : subjectNode(req);
  const node = subject && 'node' in subject ? subject.node : undefined;
  const undecided = !isApproved(csr) && !isDenied(csr) && !isFailed(csr);
  let grant: Known['grant'];
  if (csr.spec.signerName === SIGNER_KUBELET_CLIENT && isApproved(csr) && !isDenied(csr) && !isFailed(csr)) {
    const issued = issuedCertificate(csr);
    grant = { until: issued.notAfter ?? Number.POSITIVE_INFINITY, ...(issued.serial ? { serial: issued.serial } : {}) };
  }
  return { signer: csr.spec.signerName, node, undecided, grant };
}

export class CsrApprover {
  private readonly known = new Map<string, Known>();
  /**
   * The newest undecided object the watch brought, by name: handling starts from it rather than reading it again. A
   * stale one only costs a conflict and a fresh read: every write is conditional on its resourceVersion.
   */
  private readonly latest = new Map<string, CertificateSigningRequest>();
  private readonly byNode = new Map<string, Set<string>>();
  private readonly queue: WorkQueue;
  private csrInformer?: Informer;
  private nodeInformer?: Informer;
  private periodic?: Periodic;

  /** One lock per node name being decided: requests for different nodes are decided in parallel. */
  private readonly nodeLocks = new Map<string, Mutex>();

  constructor(private readonly d: ApproverDeps) {
    // A verdict on one bootstrap request depends on the verdicts on the others for the same node: requests naming the
    // same node are decided one at a time (nodeLocks); requests for different nodes do not wait for each other.
    this.queue = new WorkQueue((name) => this.handleLocked(name), { name: 'csr-approver', concurrency: d.concurrency ?? 32, retryBaseMs: d.retryBaseMs, retryMaxMs: d.retryMaxMs, log: d.log });
  }

  private async handleLocked(name: string): Promise<WorkResult> {
    const node = this.known.get(name)?.node;
    if (node === undefined) return this.handle(name);
    let lock = this.nodeLocks.get(node);
    if (!lock) this.nodeLocks.set(node, (lock = new Mutex()));
    try {
      return await lock.run(() => this.handle(name));
    } finally {
      if (!lock.busy) this.nodeLocks.delete(node);
    }
  }

  start(): void {
    const retry = { log: this.d.log, retryBaseMs: this.d.retryBaseMs, retryMaxMs: this.d.retryMaxMs };
    this.csrInformer = runInformer('csr-approver', this.d.csrs, { onList: (items) => this.onCsrList(items), onEvent: (ev) => this.onCsrEvent(ev) }, retry);
    this.nodeInformer = runInformer<Node>('csr-approver nodes', this.d.nodes, { onList: () => this.enqueueUndecided(SIGNER_KUBELET_SERVING), onEvent: (ev) => this.onNodeEvent(ev) }, retry);
    this.periodic = runPeriodically('csr-approver resync', this.d.resyncMs, async () => this.resync(), this.d.log);
  }

  /** Looks again at every undecided kubelet request: credentials expire and records change without a CSR event. */
  resync(): void {
    this.enqueueUndecided();
  }

  /** Resolves once the first CSR list has been taken in. */
  synced(): Promise<void> {
    return this.csrInformer?.synced ?? Promise.resolve();
  }

  async stop(): Promise<void> {
    await Promise.all([this.csrInformer?.stop(), this.nodeInformer?.stop(), this.periodic?.stop()]);
    await this.queue.stop();
  }

  private remember(name: string, k: Known | undefined): void {
    const old = this.known.get(name);
    if (old?.node) this.byNode.get(old.node)?.delete(name);
    if (old?.node && this.byNode.get(old.node)?.size === 0) this.byNode.delete(old.node);
    if (!k) {
      this.known.delete(name);
      return;
    }
    this.known.set(name, k);
    if (k.node) {
      let set = this.byNode.get(k.node);
      if (!set) this.byNode.set(k.node, (set = new Set()));
      set.add(name);
    }
  }

  private onCsrList(items: CertificateSigningRequest[]): void {
    for (const name of [...this.known.keys()]) this.remember(name, undefined);
    this.latest.clear();
    for (const csr of items) if (isKubelet(csr.spec?.signerName)) this.remember(csr.metadata.name, know(this.d.csrs, csr));
    this.enqueueUndecided();
  }

  private onCsrEvent(ev: ObjectEvent<CertificateSigningRequest>): void {
    const csr = ev.object;
    if (!isKubelet(csr.spec?.signerName)) return;
    const name = csr.metadata.name;
    const before = this.known.get(name);
    const now = ev.type === 'DELETED' ? undefined : know(this.d.csrs, csr);
    this.remember(name, now);
    if (now?.undecided) {
      this.latest.set(name, csr);
      this.queue.add(name);
    } else this.latest.delete(name);
    // A grant that appears or goes away (denied, failed, deleted) can change the verdict on the node's other requests.
    const node = now?.node ?? before?.node;
    if (node && (before?.grant !== undefined) !== (now?.grant !== undefined)) this.enqueueNode(node);
  }

  private onNodeEvent(ev: ObjectEvent<Node>): void {
    if (ev.type !== 'DELETED') this.enqueueNode(ev.object.metadata.name, SIGNER_KUBELET_SERVING);
  }

  private enqueueNode(node: string, signer?: string): void {
    for (const name of this.byNode.get(node) ?? []) {
      const k = this.known.get(name);
      if (k?.undecided && (!signer || k.signer === signer)) this.queue.add(name);
    }
  }

  private enqueueUndecided(signer?: string): void {
    for (const [name, k] of this.known) if (k.undecided && (!signer || k.signer === signer)) this.queue.add(name);
  }

  /** Other approved requests for the node whose certificate (issued or to come) is still good: not expired, not revoked. */
  private otherGrants(node: string, except: string, revoked: Set<string>): string[] {
    const now = this.d.clock.now().getTime();
    const out: string[] = [];
    for (const name of this.byNode.get(node) ?? []) {
      const g = this.known.get(name)?.grant;
      if (name !== except && g && g.until > now && !(g.serial && revoked.has(g.serial))) out.push(name);
    }
    return out.sort();
  }

  /** What the control plane knows of node `node` for a serving request: its pool's policy, and which DNS SANs name other nodes. */
  private async servingFacts(node: string, dns: string[], credential: NodeCredential | null): Promise<ServingFacts> {
    const poolName = credentialEntries(credential).find((e) => e.pool)?.pool;
    const pool = poolName ? await readNodePoolPolicy(this.d.store, poolName) : null;
    const otherNodes: string[] = [];
    for (const d of new Set(dns.map((x) => x.toLowerCase()))) {
      if (d === node || !isNodeName(d)) continue;
      if ((await this.d.nodes.objects.tryGet(d)) || (await getNodeCredential(this.d.store, d))) otherNodes.push(d);
    }
    return { pool, otherNodes, ...(this.d.servingReservations ? { reservations: this.d.servingReservations } : {}) };
  }

  /** What makes node `node` shielded, and the attestation record of `csr` (read only when the attestation endpoint made it). */
  private async shieldedFacts(node: string, csr: CertificateSigningRequest): Promise<ShieldedFacts> {
    const { store } = this.d;
    const enrolled = await getEnrollment(store, node);
    const tokenPool = (csr.spec.groups ?? []).find((g) => g.startsWith(`${GROUP_BOOTSTRAPPERS}:`))?.slice(GROUP_BOOTSTRAPPERS.length + 1);
    const tokenShieldedPool = tokenPool && (await readShieldedPolicy(store, tokenPool)) ? tokenPool : null;
    const attestation = csr.spec.username === TPM_ATTESTOR_USER ? await getAttestation(store, csr.metadata.name) : null;
    return { enrolledPool: enrolled?.pool ?? null, ...(enrolled ? { enrolledAt: enrolled.enrolledAt } : {}), tokenShieldedPool, attestation, requestDigest: requestDigest(csr.spec.request) };
  }

  private async handle(name: string): Promise<WorkResult> {
    const hint = this.latest.get(name);
    if (hint) {
      const r = await this.handleFrom(name, hint);
      if (this.latest.get(name) === hint) this.latest.delete(name);
      if (r !== 'stale') return r;
    }
    const r = await this.handleFrom(name, await this.d.csrs.objects.tryGet(name));
    return r === 'stale' ? 'retry' : r;
  }

  /** Decides on `csr` as given; 'stale' when it changed before the verdict could be written. */
  private async handleFrom(name: string, csr: CertificateSigningRequest | null): Promise<WorkResult | 'stale'> {
    const { csrs, nodes, store, clock, log } = this.d;
    if (!csr || !isKubelet(csr.spec?.signerName)) return 'done';
    const request = requestOf(csrs, csr);
    const subject = 'error' in request ? undefined : subjectNode(request);
    const node = subject && 'node' in subject ? subject.node : undefined;
    const credential = node ? ((await getNodeCredential(store, node))?.record ?? null) : null;
    const serving = csr.spec.signerName === SIGNER_KUBELET_SERVING;
    const nodeObject = node && serving ? await nodes.objects.tryGet(node) : null;
    const revoked = new Set(credentialEntries(credential).filter((e) => e.revokedAt).map((e) => e.serial));
    const verdict = decideApproval({
      csr,
      request,
      credential,
      node: nodeObject,
      otherGrants: node ? this.otherGrants(node, name, revoked) : [],
      now: clock.now(),
      ...(node && serving && !('error' in request) ? { serving: await this.servingFacts(node, request.sans.dns, credential) } : {}),
      ...(node && !serving ? { shielded: await this.shieldedFacts(node, csr) } : {}),
    });
    try {
      if (verdict.verdict === 'approve') {
        const written = await csrs.decide(name, 'Approved', verdict.reason, verdict.message, { resourceVersion: csr.metadata.resourceVersion }, csr);
        // Known at once, before the watch reports it: the next request for this node must see this grant.
        this.remember(name, know(csrs, written));
        log.info({ csr: name, rule: verdict.rule, node, requester: csr.spec.username }, `approved: ${verdict.message}`);
      } else if (verdict.verdict === 'pending') {
        if (csr.metadata.annotations?.[APPROVAL_NOTE_ANNOTATION] !== verdict.message) {
          await csrs.update({ ...csr, metadata: { ...csr.metadata, annotations: { ...csr.metadata.annotations, [APPROVAL_NOTE_ANNOTATION]: verdict.message } } });
          log.info({ csr: name, node, requester: csr.spec.username }, `left for an administrator: ${verdict.message}`);
        }
      }
    } catch (e) {
      // Changed or deleted under us: look again with what is there now.
      if (e instanceof TrustplaneError && (e.reason === 'Conflict' || e.reason === 'NotFound')) return e.reason === 'NotFound' ? 'done' : 'stale';
      throw e;
    }
    this.d.onVerdict?.(name, verdict);
    return 'done';
  }
}
