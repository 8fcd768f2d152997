// The reverse tunnel's public API: the control plane's server, the node's agent, and the HTTPS client that rides on it.
export { startTunnelServer, type TunnelServer, type TunnelServerOptions } from './server.js';
export { startTunnelAgent, backoffDelay, DEFAULT_BACKOFF, type TunnelAgent, type TunnelAgentOptions, type AgentCredentials, type Backoff, type TunnelAgentEvent } from './agent.js';
export { NodeHttpsAgent, type NodeHttpsAgentOptions } from './node-https-agent.js';
export { nodeNameOf, isNodeName } from './identity.js';
export type { TapDirection } from './tap.js';
export type { Keepalive } from './protocol.js';
