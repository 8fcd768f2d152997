// The control plane's HTTPS client to node endpoints: an https.Agent whose connections are TLS inside tunnel streams.
import { Agent } from 'node:https';
import type { RequestOptions } from 'node:https';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect } from 'node:tls';
import { clientOptions, type MinVersion } from '../tls/policy.js';
import type { TunnelServer } from './server.js';

export interface NodeHttpsAgentOptions {
  /** The caller's client certificate and key (PEM), from the cluster root CA: the node endpoint checks it. */
  cert: string;
  key: string;
  /** Trust anchors for the node's serving certificate. */
  ca: string;
  minVersion?: MinVersion;
  /** Keep inner TLS connections (and so their tunnel streams) open between requests. Default true. */
  keepAlive?: boolean;
  maxSockets?: number;
  dialTimeoutMs?: number;
}

/**
 * `https.request('https://<node-name>/healthz', { agent })`: the URL's host is the node name to dial; TLS runs end to end
 * between this process and the node endpoint, so the tunnel only ever relays ciphertext. The node's serving certificate
 * is verified against the URL's host, so it must name the node (a DNS SAN).
 */
export class NodeHttpsAgent extends Agent {
  constructor(
    private readonly tunnel: Pick<TunnelServer, 'dial'>,
    private readonly o: NodeHttpsAgentOptions,
  ) {
    super({ ...clientOptions({ cert: o.cert, key: o.key, ca: o.ca, minVersion: o.minVersion }), keepAlive: o.keepAlive ?? true, maxSockets: o.maxSockets });
  }

  override createConnection(options: RequestOptions, callback?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined {
    const node = String(options.hostname ?? options.host ?? '');
    this.tunnel.dial(node, { timeoutMs: this.o.dialTimeoutMs }).then(
      (stream) => {
        const socket = connect({ ...(options as object), socket: stream, host: node, servername: isIP(node) ? undefined : node });
        callback?.(null, socket);
      },
      (err: Error) => callback?.(err, undefined as unknown as Duplex),
    );
    return undefined;
  }
}
