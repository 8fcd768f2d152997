// The members of a real etcd cluster as `trustplane store member` reports them, through the store they serve: which
// etcd CA generation issued each member's certificates, and which generations its running etcd trusts (etcd reads its
// trusted CA files only when it starts). An etcd CA rotation completes once every member serves from, and trusts, the
// new generation.
import type { AuthorityKind } from '../ca/authority.js';
import type { Store } from '../store/client.js';

/** One key per member: its report. */
export const MEMBER_REPORTS = '/registry/trustplane/etcd-members/';
/** Held (on a lease) by the one member restarting at a time. */
export const MEMBER_RESTART_LOCK = '/registry/trustplane/etcd-member-restart-lock';

export type EtcdAuthority = Extract<AuthorityKind, 'etcd-api' | 'etcd-peer'>;
export const ETCD_AUTHORITIES: EtcdAuthority[] = ['etcd-api', 'etcd-peer'];

export interface MemberReport {
  member: string;
  /** etcd's member id, as the store client's status call gives it. */
  memberId: string;
  clientUrl: string;
  /** The etcd process now running. */
  pid: number;
  /** When this etcd process started. */
  startedAt: string;
  /** Per authority, the generation that issued the member's certificate (client port for etcd-api, peer for etcd-peer). */
  certificates: Record<EtcdAuthority, number>;
  /** Per authority, the generations in the trusted CA file the running etcd loaded. */
  trusts: Record<EtcdAuthority, number[]>;
}

export async function memberReports(store: Store): Promise<MemberReport[]> {
  const r = await store.getPrefix(MEMBER_REPORTS);
  return r.kvs.map((kv) => JSON.parse(kv.value.toString('utf8')) as MemberReport);
}

/**
 * The members that stop an etcd CA rotation from completing: for each of the cluster's endpoints, its member unless it
 * serves a certificate from generation `to` and trusts `to`. A member that does not answer, or that no `trustplane store
 * member` runs, is named with its endpoint and the reason.
 */
export async function memberLaggards(store: Store, kind: EtcdAuthority, to: number): Promise<string[]> {
  const [statuses, reports] = await Promise.all([store.status(), memberReports(store)]);
  const out: string[] = [];
  for (const s of statuses) {
    if (s.error) {
      out.push(`${s.endpoint} (not answering)`);
      continue;
    }
    const r = reports.find((x) => x.memberId === s.memberId);
    if (!r) out.push(`${s.endpoint} (no report: not run by \`trustplane store member\`)`);
    else if (r.certificates[kind] !== to || !r.trusts[kind].includes(to)) out.push(r.member);
  }
  return out.sort();
}
