// The conformance suite against trustplane's embedded etcd-compatible store.
import { conformanceSuite } from './suite.js';
import { startEmbeddedTarget } from './targets.js';

conformanceSuite('embedded store', startEmbeddedTarget);
