// The conformance suite against a real 1-member etcd 3.4: the ground truth the embedded store is held to.
import { conformanceSuite } from './suite.js';
import { startEtcdTarget } from './targets.js';

conformanceSuite('etcd 3.4 (1 member)', startEtcdTarget);
