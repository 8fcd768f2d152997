// Credential rotation of one authority as a persisted state machine. Each phase is recorded before its side effects and
// every side effect is idempotent (the CA service's generation operations are), so a host killed at any point resumes
// the rotation where it was and finishes it.
//
//   preparing   the CA makes the next generation, certified by the current one; every component trusts both
//   activating  the new generation signs; serving certificates are re-issued under it (their chain carries the
//               cross-certificate, so clients holding only the old bundle still verify them)
//   moving      nodes pick up the new bundle and re-issue their certificates (RECONCILING); waits for completion,
//               which is refused while nodes hold only old credentials or clients were seen presenting them lately
//   completing  the old generation is retired (its key destroyed); only the new one is trusted
//   done
import type { AuthorityKind } from '../ca/authority.js';
import { authorityTitle } from '../ca/authority.js';
import type { CaClient } from '../ca/client.js';
import type { ClusterView } from '../ca/service.js';
import type { Clock } from '../util/clock.js';
import { TrustplaneError } from '../util/errors.js';
import { failpoint } from '../util/failpoint.js';
import { activeGenerationOf } from './generations.js';
import type { Logger } from '../util/log.js';
import { describeObservedClient, windowText, type ObservedClient } from './observed-clients.js';

export type RotationPhase = 'preparing' | 'activating' | 'moving' | 'completing' | 'done';
export const ROTATION_PHASES: RotationPhase[] = ['preparing', 'activating', 'moving', 'completing', 'done'];

export interface RotationRecord {
  authority: AuthorityKind;
  phase: RotationPhase;
  trigger: 'manual' | 'automatic';
  startedAt: string;
  /** The generation being replaced. */
  from: number;
  /** The new generation, once the CA made it. */
  to?: number;
  /** Set by --force: completed although some nodes had not moved. */
  forced?: string[];
  /** Set by --force: completed although these clients were seen presenting the old generation lately. */
  forcedClients?: string[];
  completedAt?: string;
  /** When each phase was entered. */
  history: Array<{ phase: RotationPhase; at: string }>;
}

export interface RotationDeps {
  cluster: string;
  ca: Pick<CaClient, 'describeCluster' | 'prepareGeneration' | 'activateGeneration' | 'retireGeneration'>;
  /** Records the rotation durably (before the side effects of its phase). */
  save(r: RotationRecord): void;
  /** Makes every running component trust, and serve, what the CA's view says now. Idempotent. */
  applyTrust(kind: AuthorityKind, view: ClusterView): Promise<void>;
  /** Nodes whose newest credential is older than generation `to` (the root CA only; other authorities have none). */
  laggards(kind: AuthorityKind, to: number): Promise<string[]>;
  /**
   * Clients that servers saw presenting a generation older than `to` within the last `windowMs` and that have not
   * moved since (see observed-clients.ts); absent or undefined: no gate for this authority.
   */
  observedOld?(kind: AuthorityKind, to: number): Promise<{ clients: ObservedClient[]; windowMs: number } | undefined>;
  clock: Clock;
  log: Logger;
}


export function isRunning(r: RotationRecord | undefined): r is RotationRecord {
  return !!r && r.phase !== 'done';
}

/** A new rotation record for `kind`, to be saved and advanced. Refused while another one runs. */
export async function beginRotation(d: RotationDeps, running: RotationRecord[], kind: AuthorityKind, trigger: RotationRecord['trigger']): Promise<RotationRecord> {
  const busy = running.find(isRunning);
  if (busy) {
    throw new TrustplaneError(
      'Conflict',
      `a rotation of the ${authorityTitle(busy.authority)} of cluster "${d.cluster}" is in progress (phase ${busy.phase}, started ${busy.startedAt})`,
      busy.phase === 'moving' && busy.authority === 'root' ? `complete it first: \`trustplane clusters update ${d.cluster} --complete-credential-rotation\`` : 'wait for it to finish',
    );
  }
  const from = activeGenerationOf(await d.ca.describeCluster(d.cluster), kind);
  if (from === undefined) throw new TrustplaneError('Unavailable', `the ${authorityTitle(kind)} of cluster "${d.cluster}" has no active generation`);
  const now = d.clock.now().toISOString();
  const r: RotationRecord = { authority: kind, phase: 'preparing', trigger, startedAt: now, from, history: [{ phase: 'preparing', at: now }] };
  d.save(r);
  d.log.info({ cluster: d.cluster, authority: kind, from, trigger }, 'credential rotation started');
  failpoint('rotation.preparing');
  return r;
}

function enter(d: RotationDeps, r: RotationRecord, phase: RotationPhase): void {
  r.phase = phase;
  const at = d.clock.now().toISOString();
  r.history.push({ phase, at });
  if (phase === 'done') r.completedAt = at;
  d.save(r);
  d.log.info({ cluster: d.cluster, authority: r.authority, phase, from: r.from, to: r.to }, `credential rotation: ${phase}`);
  failpoint(`rotation.${phase}`);
}

/** Runs the phases that need no decision: up to `moving` (which waits to be completed) or to `done`. */
export async function advance(d: RotationDeps, r: RotationRecord): Promise<void> {
  for (;;) {
    switch (r.phase) {
      case 'preparing': {
        const view = await d.ca.prepareGeneration(d.cluster, r.authority);
        const a = view.authorities.find((x) => x.kind === r.authority)!;
        const next = a.generations.find((g) => g.state === 'prepared' || (g.generation > r.from && g.state === 'active'));
        if (!next) throw new TrustplaneError('Internal', `the CA service prepared no new generation of the ${authorityTitle(r.authority)}`);
        r.to = next.generation;
        await d.applyTrust(r.authority, view);
        enter(d, r, 'activating');
        break;
      }
      case 'activating': {
        const view = await d.ca.activateGeneration(d.cluster, r.authority, r.to!);
        await d.applyTrust(r.authority, view);
        enter(d, r, 'moving');
        break;
      }
      case 'moving':
        return;
      case 'completing': {
        const view = await d.ca.retireGeneration(d.cluster, r.authority, r.from);
        await d.applyTrust(r.authority, view);
        enter(d, r, 'done');
        break;
      }
      case 'done':
        return;
    }
  }
}

/**
 * Completes a rotation in `moving`: refused while nodes still hold only old credentials, or while clients were seen
 * presenting the old generation within the observed window, unless forced.
 */
export async function completeRotation(d: RotationDeps, r: RotationRecord, force: boolean): Promise<void> {
  if (r.phase !== 'moving' && r.phase !== 'completing') {
    throw new TrustplaneError('Conflict', `the rotation of the ${authorityTitle(r.authority)} is in phase ${r.phase}; it can be completed once nodes are moving to the new generation`, 'try again in a moment');
  }
  if (r.phase === 'moving') {
    const late = await d.laggards(r.authority, r.to!);
    if (late.length > 0 && !force) {
      const shown = late.slice(0, 20).join(', ') + (late.length > 20 ? ` and ${late.length - 20} more` : '');
      throw new TrustplaneError(
        'Conflict',
        `${late.length} node(s) still hold only credentials of generation ${r.from} of the cluster root CA: ${shown}`,
        'wait for them to re-issue their certificates (their agents do it by themselves), or pass --force to cut them off (they must join again with a new bootstrap token)',
      );
    }
    const seen = await d.observedOld?.(r.authority, r.to!);
    if (seen && seen.clients.length > 0 && !force) {
      const n = seen.clients.length;
      const shown = seen.clients.slice(0, 10).map(describeObservedClient).join('; ') + (n > 10 ? `; and ${n - 10} more` : '');
      throw new TrustplaneError(
        'Conflict',
        `${n} client(s) presented generation ${r.from} of the ${authorityTitle(r.authority)} in the last ${windowText(seen.windowMs)} and have not been seen on generation ${r.to} since: ${shown}`,
        `move them to new credentials (admin users: \`trustplane clusters get-credentials ${d.cluster}\`) or wait until they have not been seen for ${windowText(seen.windowMs)}; or pass --force to complete anyway (they are refused from then on). See them with \`trustplane clusters check-credential-lifetime ${d.cluster}\``,
      );
    }
    if (late.length > 0) r.forced = late;
    if (seen && seen.clients.length > 0) r.forcedClients = seen.clients.map((c) => `${c.user} (${c.server})`);
    enter(d, r, 'completing');
  }
  await advance(d, r);
}
