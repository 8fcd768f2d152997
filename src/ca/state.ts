// The CA service's persisted state: clusters, their authorities and generations. Never key material: keys stay in the KeyStore.
import { existsSync, readFileSync } from 'node:fs';
import type { Authority, AuthorityKind } from './authority.js';
import type { KeyAlgorithm } from '../pki/types.js';
import { writeFileAtomic } from '../util/files.js';
import { TrustplaneError } from '../util/errors.js';

export interface ClusterRecord {
  name: string;
  uid: string;
  createdAt: string;
  /** 'creating' and 'deleting' are recorded before their side effects, so a restart finishes them. */
  state: 'creating' | 'ready' | 'deleting';
  keyAlgorithm: KeyAlgorithm;
  lifetimes: Record<AuthorityKind, number>; // seconds, per authority
  authorities: Record<AuthorityKind, Authority>;
  /**
   * The names and addresses no kubelet serving certificate of this cluster may carry: the SANs of the API server's
   * serving certificates, recorded as the CA issues them; the service network (defaults when absent).
   */
  servingReservations?: { dns: string[]; ip: string[]; serviceCidrs?: string[] };
}

export interface ServiceAuthority {
  keyId: string;
  keyLabel: string;
  certificate: string;
}

export interface CaStateData {
  version: 1;
  service?: ServiceAuthority;
  clusters: Record<string, ClusterRecord>;
}

export class CaStateFile {
  data: CaStateData;

  constructor(readonly path: string) {
    if (existsSync(path)) {
      try {
        this.data = JSON.parse(readFileSync(path, 'utf8')) as CaStateData;
      } catch (e) {
        throw new TrustplaneError('Internal', `CA state file ${path} is unreadable: ${(e as Error).message}`, 'restore it from a backup; the keys in the key store are untouched');
      }
      if (this.data.version !== 1) throw new TrustplaneError('Internal', `CA state file ${path} has unknown version ${String(this.data.version)}`);
    } else {
      this.data = { version: 1, clusters: {} };
    }
  }

  save(): void {
    writeFileAtomic(this.path, JSON.stringify(this.data, null, 2) + '\n');
  }
}
