// The registries of one cluster's store, made once and handed to its API server and its controllers, so that they share
// one watch per resource (the watch cache) and one memo of parsed certificate requests.
import type { Store } from '../../store/client.js';
import { systemClock, type Clock } from '../../util/clock.js';
import { ClusterTrustBundleRegistry } from './cluster-trust-bundle.js';
import { CsrRegistry } from './csr.js';
import { LeaseRegistry } from './lease.js';
import { NodeRegistry } from './node.js';

export interface Registries {
  csrs: CsrRegistry;
  nodes: NodeRegistry;
  leases: LeaseRegistry;
  trustBundles: ClusterTrustBundleRegistry;
}

export function createRegistries(store: Store, clock: Clock = systemClock): Registries {
  return { csrs: new CsrRegistry(store, clock), nodes: new NodeRegistry(store, clock), leases: new LeaseRegistry(store, clock), trustBundles: new ClusterTrustBundleRegistry(store, clock) };
}
