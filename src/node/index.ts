// The node agent's public API: join or run a node, and the pieces other components may reuse (discovery, CA pins, schedule).
export {
  DEFAULT_WAIT_TIMEOUT_MS,
  joinNode,
  startNodeAgent,
  type CertificateStatus,
  type NodeAgent,
  type NodeAgentOptions,
  type NodeAgentStatus,
} from './agent.js';
export { discoverCluster, parseServerUrl, type DiscoveredCluster, type DiscoveryOptions } from './discovery.js';
export { matchCaPin, parseCaCertHash, pinsOf } from './ca-pin.js';
export { renewalTime, RENEW_FROM, RENEW_TO } from './rotation.js';
export { nodePaths, type NodeConfig } from './state.js';
export { startNodeEndpoint, type NodeEndpoint, type NodeEndpointOptions } from './endpoint.js';
