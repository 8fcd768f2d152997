// Which clients still present an old generation of an authority while it rotates: every server's sightings of client
// certificates (tls/observed-clients.ts), given their generations, and the one rule that decides who counts.
import type { AuthorityKind } from '../ca/authority.js';
import type { ClusterView } from '../ca/service.js';
import type { ClientSighting, ObservingServer } from '../tls/observed-clients.js';
import { formatDuration } from '../util/duration.js';
import { generationOfKeyId } from './generations.js';

/** A client seen on an old generation, as the fleet API answers it (describe, check-credential-lifetime). */
export interface ObservedClient {
  user: string;
  groups: string[];
  generation: number;
  server: ObservingServer;
  /** ISO time. */
  lastSeen: string;
  address: string;
}

/** How far back a sighting counts, unless the host is told otherwise (`trustplane serve --observed-window`). */
export const DEFAULT_OBSERVED_WINDOW_MS = 10 * 60_000;

/**
 * The authority whose certificates each server kind takes from its clients. The CA service's callers hold certificates
 * of the service's own CA, which no cluster rotation replaces: its sightings never hold one back.
 */
export const AUTHORITY_OF_SERVER: Record<ObservingServer, AuthorityKind | undefined> = { apiserver: 'root', tunnel: 'root', etcd: 'etcd-api', ca: undefined };

export interface GenerationSighting extends ClientSighting {
  authority: AuthorityKind;
  generation: number;
}

/** The sightings with the generation that issued each one's certificate; those of no cluster authority are left out. */
export function withGenerations(sightings: ClientSighting[], view: ClusterView): GenerationSighting[] {
  const out: GenerationSighting[] = [];
  for (const s of sightings) {
    const authority = AUTHORITY_OF_SERVER[s.server];
    if (!authority) continue;
    const generation = generationOfKeyId(view, s.issuerKeyId, authority);
    if (generation > 0) out.push({ ...s, authority, generation });
  }
  return out;
}

/**
 * The rule. A client (a user, as one server kind sees it) still presents an old generation of `authority` when a
 * server saw it on a generation older than `to` within the last `windowMs`, unless the same server kind saw the same
 * user on `to` or newer after that, or at the same moment (a tunnel replaced by a newer connection is seen as it
 * closes, and the newer one with it): it has moved. That is how the host's own clients (its store client re-issued at
 * activation), nodes that re-issued their certificates and an admin who took new credentials stop counting at once,
 * without waiting out the window. The price of judging by user name: while an old and a new credential of the same
 * user are both in use, the older one is hidden whenever the newer one was seen last; give people distinct names
 * (`get-credentials --username`) to see each. Most recently seen first.
 */
export function stillPresentingOld(sightings: GenerationSighting[], q: { authority: AuthorityKind; to: number; nowMs: number; windowMs: number }): ObservedClient[] {
  const since = q.nowMs - q.windowMs;
  const newest = new Map<string, number>();
  const key = (s: GenerationSighting) => `${s.user}\u0000${s.server}`;
  for (const s of sightings) {
    if (s.authority !== q.authority || s.generation < q.to) continue;
    newest.set(key(s), Math.max(newest.get(key(s)) ?? -Infinity, s.lastSeenMs));
  }
  return sightings
    .filter((s) => s.authority === q.authority && s.generation < q.to && s.lastSeenMs >= since && !((newest.get(key(s)) ?? -Infinity) >= s.lastSeenMs))
    .sort((a, b) => b.lastSeenMs - a.lastSeenMs || a.user.localeCompare(b.user))
    .map((s) => ({ user: s.user, groups: s.groups, generation: s.generation, server: s.server, lastSeen: new Date(s.lastSeenMs).toISOString(), address: s.address }));
}

/** "admin (groups system:masters) on the apiserver from 127.0.0.1, generation 1, last seen <time>" */
export function describeObservedClient(c: ObservedClient): string {
  const groups = c.groups.length ? ` (groups ${c.groups.join(',')})` : '';
  return `${c.user}${groups} on the ${c.server} from ${c.address || 'an unknown address'}, generation ${c.generation}, last seen ${c.lastSeen}`;
}

/** "10m" for the messages that say how far back sightings count. */
export function windowText(windowMs: number): string {
  return formatDuration(Math.round(windowMs / 1000));
}
