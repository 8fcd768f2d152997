// Following a credential rotation of the cluster root CA from the trust header every API answer carries: what the node
// agent and each hollow node do when the bundle or the signing generation changes, in one place.
//
// Every answer says "sha256:<bundle digest>;signer=<authority key id of the CA that signs now>" (cluster-info.ts). A
// node whose bundle differs reads the bundle again and trusts the new one; a node whose client or serving
// certificate was issued by another CA than the signer re-issues it (renewal path) and swaps it. The new bundle is read
// from the ClusterTrustBundle the control plane publishes (trust-bundle-source.ts), from cluster-info on older hosts. The per-answer cost is
// one string compare once a header is settled; at most one follow-up runs per node; a generation whose re-issue worked
// (or is running) is not asked for again, one that failed is tried again on a later answer.
import { parseTrustHeader } from '../apiserver/api/cluster-info.js';
import type { ParsedCertificate } from '../pki/index.js';
import type { Logger } from '../util/log.js';

export type TrustHeader = NonNullable<ReturnType<typeof parseTrustHeader>>;

/** A certificate of the node that a new signing generation makes it re-issue. */
export interface FollowedCertificate {
  /** For logs: "client certificate", "serving certificate". */
  what: string;
  /** The leaf held now; undefined while the node has none (nothing to re-issue). */
  leaf(): ParsedCertificate | undefined;
  /** Gets a new certificate and swaps it in (without failing requests in flight). */
  reissue(): Promise<void>;
}

export interface TrustFollowerOptions {
  /** Digest (trustBundleDigest) of the bundle the node trusts now. */
  bundleDigest(): string;
  /** Reads the bundle the header names (trust-bundle-source.ts) over the node's verified connection and trusts it everywhere the node uses one. */
  refreshBundle(header: TrustHeader): Promise<void>;
  /** Client first: the serving certificate's request then goes with the new client certificate. */
  certificates: FollowedCertificate[];
  /** Re-issues wait a random 0..jitterMs first, so that a fleet learning of a rotation together does not ask together. Default 0. */
  jitterMs?: number;
  /** Runs the re-issues of one follow-up (e.g. under a limit shared by many nodes); default: runs them at once. */
  schedule?: (reissues: () => Promise<void>) => Promise<void>;
  log: Logger;
  random?: () => number;
}

export interface TrustFollowerStats {
  /** Follow-ups started (bundle read and/or re-issues). */
  followUps: number;
  /** Certificates re-issued under a new signer. */
  reissued: number;
  failures: number;
  lastError?: string;
}

/** The authority key id of a certificate as the trust header writes the signer: lower-case hex, "" when absent. */
export function authorityKeyIdOf(leaf: ParsedCertificate): string {
  return leaf.authorityKeyId?.toString('hex') ?? '';
}

/**
 * What a trust header asks of a node: read the bundle again (its digest differs), re-issue certificates (the signer is
 * new to it, and some certificate it holds was issued by another CA), or nothing (undefined).
 */
export function trustFollowUp(t: TrustHeader, node: { bundleDigest: string; authorityKeyIds: string[]; triedSigner: string }): { refreshBundle: boolean; reissue: boolean } | undefined {
  const refreshBundle = t.digest !== node.bundleDigest;
  const reissue = t.signer !== '' && t.signer !== node.triedSigner && node.authorityKeyIds.some((aki) => aki !== t.signer);
  return refreshBundle || reissue ? { refreshBundle, reissue } : undefined;
}

const serialsOf = (leaves: ParsedCertificate[]) => leaves.map((l) => l.serialHex).join(',');

export class TrustFollower {
  readonly stats: TrustFollowerStats = { followUps: 0, reissued: 0, failures: 0 };
  /**
   * The last header value that asked nothing, with the serials the node held then: the same again is dismissed with
   * one compare. A certificate that arrives later (a serving certificate requested just before the rotation, issued
   * by the old generation) changes the serials, so it is looked at.
   */
  private settled = '';
  /** The signer tried, with the serials held once that try ended: the same state is not tried again in a loop. */
  private tried = '';
  private running: Promise<void> | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;

  constructor(private readonly o: TrustFollowerOptions) {}

  /** Give it the trust header of every API answer (ApiClient's onTrustHeader). */
  readonly observe = (value: string): void => {
    if (this.running || this.stopped) return;
    const held = this.held();
    const state = `${value}|${serialsOf(held)}`;
    if (state === this.settled) return;
    const t = parseTrustHeader(value);
    if (!t) return;
    const triedSigner = this.tried === `${t.signer}|${serialsOf(held)}` ? t.signer : '';
    const ask = trustFollowUp(t, { bundleDigest: this.o.bundleDigest(), authorityKeyIds: held.map(authorityKeyIdOf), triedSigner });
    if (!ask) {
      this.settled = state;
      return;
    }
    this.stats.followUps++;
    this.running = this.follow(t, ask)
      .catch((e: Error) => {
        if (this.stopped) return;
        this.tried = '';
        this.stats.failures++;
        this.stats.lastError = e.message;
        this.o.log.warn({ err: e.message }, 'following the credential rotation failed; trying again on a later answer');
      })
      .finally(() => (this.running = undefined));
  };

  /** True while a follow-up (bundle read, jitter wait or re-issue) runs. */
  get following(): boolean {
    return this.running !== undefined;
  }

  /** Resolves when no follow-up runs. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** No follow-up starts any more; one waiting out its jitter ends now. */
  stop(): void {
    this.stopped = true;
    this.wake?.();
  }

  private held(): ParsedCertificate[] {
    return this.o.certificates.flatMap((c) => c.leaf() ?? []);
  }

  private async follow(t: TrustHeader, ask: { refreshBundle: boolean; reissue: boolean }): Promise<void> {
    if (ask.refreshBundle) await this.o.refreshBundle(t);
    if (!ask.reissue) return;
    this.tried = `${t.signer}|${serialsOf(this.held())}`;
    const jitter = Math.floor((this.o.random ?? Math.random)() * (this.o.jitterMs ?? 0));
    if (jitter > 0) await this.sleep(jitter);
    if (this.stopped) return;
    const reissues = async () => {
      // Read again after the wait: a certificate renewed meanwhile may already be the signer's.
      for (const c of this.o.certificates) {
        const leaf = c.leaf();
        if (this.stopped || !leaf || authorityKeyIdOf(leaf) === t.signer) continue;
        this.o.log.info({ serial: leaf.serialHex }, `re-issuing the ${c.what} under the new cluster root CA generation`);
        await c.reissue();
        this.stats.reissued++;
      }
    };
    await (this.o.schedule ? this.o.schedule(reissues) : reissues());
    this.tried = `${t.signer}|${serialsOf(this.held())}`;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
    });
  }
}
