// Credential lifetime as plain values: how long each authority has left, when the next automatic action happens, and
// whether the cluster is DEGRADED. No I/O; every caller passes the time (from the one injected clock).
import { AUTHORITY_KINDS, authorityTitle, type AuthorityKind } from '../ca/authority.js';
import type { ClusterView } from '../ca/service.js';
import type { RotationRecord } from './rotation.js';

const DAY_S = 86_400;
/** The lifetime controller starts a rotation of the cluster root CA when this much or less is left, whatever the maintenance windows. */
export const ROOT_ROTATE_BEFORE_S = 30 * DAY_S;
/** The cluster is DEGRADED when its cluster root CA has this much or less left. */
export const ROOT_DEGRADED_BEFORE_S = 7 * DAY_S;
/** The etcd CAs (5-year certificates) are rotated when this much or less is left. */
export const ETCD_ROTATE_BEFORE_S = 90 * DAY_S;
/** An automatic rotation completes once every node has moved, and at the latest this long after it started. */
export const AUTO_COMPLETE_GRACE_S = 7 * DAY_S;

export interface GenerationLifetime {
  generation: number;
  state: string;
  notAfter?: string;
  secondsLeft?: number;
}

export interface AuthorityLifetime {
  kind: AuthorityKind;
  title: string;
  generations: GenerationLifetime[];
  /** The active generation's not-after and time left. */
  notAfter?: string;
  secondsLeft?: number;
  /** The next automatic action on this authority and when it happens (now, when it is due). */
  next: { action: 'start-rotation' | 'complete-rotation' | 'continue-rotation' | 'none'; at: string; why: string };
}

export function rotateBeforeS(kind: AuthorityKind): number {
  return kind === 'root' ? ROOT_ROTATE_BEFORE_S : ETCD_ROTATE_BEFORE_S;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** Per authority: its generations with their time left, and what happens next. */
export function lifetimesOf(view: Pick<ClusterView, 'authorities'>, now: Date, rotations: RotationRecord[] = []): AuthorityLifetime[] {
  const t = now.getTime();
  return AUTHORITY_KINDS.map((kind) => {
    const a = view.authorities.find((x) => x.kind === kind);
    const generations: GenerationLifetime[] = (a?.generations ?? []).map((g) => ({
      generation: g.generation,
      state: g.state,
      notAfter: g.notAfter,
      secondsLeft: g.notAfter ? Math.floor((Date.parse(g.notAfter) - t) / 1000) : undefined,
    }));
    const active = generations.find((g) => g.state === 'active');
    const running = rotations.find((r) => r.authority === kind && r.phase !== 'done');
    let next: AuthorityLifetime['next'];
    if (running) {
      const startedMs = Date.parse(running.startedAt);
      next =
        running.phase === 'moving'
          ? kind !== 'root'
            ? { action: 'complete-rotation', at: iso(t), why: 'once every etcd member serves from and trusts the new generation' }
            : running.trigger === 'automatic'
            ? { action: 'complete-rotation', at: iso(Math.max(t, startedMs + AUTO_COMPLETE_GRACE_S * 1000)), why: 'once every node has moved to the new generation, at the latest after the grace period' }
            : { action: 'none', at: iso(t), why: 'a manual rotation: waiting for `clusters update --complete-credential-rotation`' }
          : { action: 'continue-rotation', at: iso(t), why: `rotation in phase ${running.phase}` };
    } else {
      const notAfterMs = active?.notAfter ? Date.parse(active.notAfter) : t;
      const at = Math.max(t, notAfterMs - rotateBeforeS(kind) * 1000);
      next = { action: 'start-rotation', at: iso(at), why: `automatic rotation ${rotateBeforeS(kind) / DAY_S} days before expiry` };
    }
    return { kind, title: authorityTitle(kind), generations, notAfter: active?.notAfter, secondsLeft: active?.secondsLeft, next };
  });
}

/** DEGRADED when the cluster root CA expires within 7 days; the message says when and what to do. */
export function degradation(view: ClusterView, now: Date): string | undefined {
  const root = lifetimesOf(view, now).find((l) => l.kind === 'root')!;
  if (root.secondsLeft === undefined || root.secondsLeft > ROOT_DEGRADED_BEFORE_S) return undefined;
  const when = root.secondsLeft <= 0 ? `expired at ${root.notAfter}` : `expires at ${root.notAfter} (in ${Math.floor(root.secondsLeft / 3600)} hours)`;
  return `the cluster root CA ${when}; complete the credential rotation (\`trustplane clusters update ${view.name} --complete-credential-rotation\`, after nodes have moved) or start one (\`--start-credential-rotation\`)`;
}
