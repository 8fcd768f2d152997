// One end of a tunnel in its own process, driven over IPC: for the lifecycle tests and the tunnel benchmark.
//   agent          a node: agent + HTTPS endpoint (optionally also listening, for direct requests); closes on request
//   server         a control plane: tunnel server, dials a kept-alive inner connection and a raw stream; closes on request
//   agents         N node agents with their own certificates (or, plain, N bare mTLS connections), for the server's memory
//   memory-server  a tunnel server, or a plain mTLS server, that reports its own memory before and after N connections
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { connect, createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { clientOptions, serverOptions } from '../../src/tls/policy.js';
import { NodeHttpsAgent, startTunnelAgent, startTunnelServer } from '../../src/tunnel/index.js';
import { waitFor } from '../../src/util/wait.js';
import { fetchVia } from './helpers.js';

interface Pem {
  cert: string;
  key: string;
}

export type PeerSetup =
  | { role: 'agent'; node: string; ca: string; client: Pem; serving: Pem; url: string; listen?: boolean }
  | { role: 'server'; node: string; ca: string; serving: Pem; apiClient: Pem }
  | { role: 'agents'; ca: string; url: string; clients: Array<Pem & { node: string }>; plain?: boolean }
  | { role: 'memory-server'; kind: 'tunnel' | 'tls'; ca: string; serving: Pem; expect: number };

export interface MemorySample {
  rss: number;
  heapUsed: number;
  external: number;
}

function send(m: object) {
  process.send?.(m);
}

/** Waits for the parent's word to close; from then on the IPC channel must not be what keeps the process alive. */
async function closeRequested() {
  await new Promise((r) => process.once('message', r));
  process.channel?.unref();
}

function sample(): MemorySample {
  // The figures are only comparable after a full collection.
  setFlagsFromString('--expose_gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  gc();
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external };
}

async function agentEnd(s: Extract<PeerSetup, { role: 'agent' }>) {
  const endpoint = createHttpsServer(serverOptions({ cert: s.serving.cert, key: s.serving.key, ca: s.ca, clientCert: 'require' }), (_req, res) => res.end(`hello from ${s.node}`));
  endpoint.keepAliveTimeout = 60_000;
  let port: number | undefined;
  if (s.listen) {
    await new Promise<void>((r) => endpoint.listen(0, '127.0.0.1', r));
    port = (endpoint.address() as AddressInfo).port;
  }
  const agent = startTunnelAgent({ url: s.url, credentials: () => ({ cert: s.client.cert, key: s.client.key, ca: s.ca }), onStream: (st) => endpoint.emit('connection', st) });
  await agent.waitConnected(10_000);
  send({ ready: true, port });
  await closeRequested();
  // Only this end closes; the server, and the streams it opened, are still there.
  await agent.close();
  endpoint.close();
  endpoint.closeAllConnections();
}

async function serverEnd(s: Extract<PeerSetup, { role: 'server' }>) {
  const server = await startTunnelServer({ tls: { cert: s.serving.cert, key: s.serving.key, clientCa: s.ca } });
  send({ url: server.url });
  await server.waitFor(s.node, 10_000);
  // Left open on purpose: a kept-alive inner TLS connection and a raw stream nobody closes.
  const http = new NodeHttpsAgent(server, { cert: s.apiClient.cert, key: s.apiClient.key, ca: s.ca, keepAlive: true });
  const r = await fetchVia(http, `https://${s.node}/whoami`);
  if (r.status !== 200) throw new Error(`the node answered ${r.status}`);
  const raw = await server.dial(s.node);
  raw.on('error', () => undefined);
  send({ ready: true, stats: server.stats() });
  await closeRequested();
  await server.close();
  send({ stats: server.stats() });
}

async function agentsEnd(s: Extract<PeerSetup, { role: 'agents' }>) {
  const closers: Array<() => Promise<void>> = [];
  const u = new URL(s.url);
  // In waves, so the server sees a steady arrival rather than one burst of handshakes.
  for (let i = 0; i < s.clients.length; i += 100) {
    const wave = s.clients.slice(i, i + 100);
    if (s.plain) {
      const sockets = await Promise.all(
        wave.map(
          (c) =>
            new Promise<TLSSocket>((resolve, reject) => {
              const sock = connect({ ...clientOptions({ cert: c.cert, key: c.key, ca: s.ca }), host: u.hostname, port: Number(u.port) }, () => resolve(sock));
              sock.once('error', reject);
            }),
        ),
      );
      for (const sock of sockets) closers.push(() => new Promise<void>((r) => (sock.destroyed ? r() : (sock.once('close', () => r()), sock.destroy()))));
    } else {
      const agents = wave.map((c) =>
        startTunnelAgent({ url: s.url, credentials: () => ({ cert: c.cert, key: c.key, ca: s.ca }), onStream: (st) => st.destroy(), backoff: { initialMs: 100, maxMs: 2000 } }),
      );
      await Promise.all(agents.map((a) => a.waitConnected(30_000)));
      for (const a of agents) closers.push(() => a.close());
    }
  }
  send({ ready: true, connected: closers.length });
  await closeRequested();
  await Promise.all(closers.map((c) => c()));
}

async function memoryServerEnd(s: Extract<PeerSetup, { role: 'memory-server' }>) {
  const before = sample();
  let count: () => number;
  let close: () => Promise<void>;
  let url: string;
  if (s.kind === 'tunnel') {
    const server = await startTunnelServer({ tls: { cert: s.serving.cert, key: s.serving.key, clientCa: s.ca } });
    url = server.url;
    count = () => server.stats().agents;
    close = () => server.close();
  } else {
    // The anchor: the same mutual TLS connections held by a bare TLS server, no HTTP/2 on them.
    const held = new Set<TLSSocket>();
    const server = createTlsServer(serverOptions({ cert: s.serving.cert, key: s.serving.key, ca: s.ca, clientCert: 'require' }), (sock) => {
      held.add(sock);
      sock.on('error', () => undefined);
      sock.once('close', () => held.delete(sock));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    count = () => held.size;
    close = () =>
      new Promise<void>((r) => {
        server.close(() => r());
        for (const h of held) h.destroy();
      });
  }
  const started = sample();
  send({ url });
  await waitFor(`${s.expect} connections`, () => count() >= s.expect, 60_000, 20);
  const connected = sample();
  send({ before, started, connected, count: count() });
  await closeRequested();
  await close();
}

const ROLES = { agent: agentEnd, server: serverEnd, agents: agentsEnd, 'memory-server': memoryServerEnd } as const;

process.once('message', (setup: PeerSetup) => {
  (ROLES[setup.role] as (s: PeerSetup) => Promise<void>)(setup).then(
    () => {
      process.stdout.write('closed\n');
      // Shown only if the process fails to exit: what is still holding it.
      setTimeout(() => process.stdout.write(`still running: ${process.getActiveResourcesInfo().join(',')}\n`), 3000).unref();
    },
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
});
