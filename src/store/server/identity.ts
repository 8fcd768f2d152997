// Cluster and member IDs: stable uint64 values derived from the configured names, so restarts keep them.
import { createHash } from 'node:crypto';

export interface Identity {
  /** uint64 as a decimal string. */
  clusterId: string;
  memberId: string;
  name: string;
}

function uint64Of(text: string): string {
  const v = createHash('sha256').update(text).digest().readBigUInt64BE();
  return (v === 0n ? 1n : v).toString();
}

export function identityOf(clusterId = 'trustplane', memberName = 'default'): Identity {
  return { clusterId: uint64Of(`cluster:${clusterId}`), memberId: uint64Of(`member:${clusterId}/${memberName}`), name: memberName };
}
