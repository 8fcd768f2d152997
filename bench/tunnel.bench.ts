// Reverse tunnel: HTTPS latency to a node endpoint through the tunnel beside a direct request, and server memory per agent.
import { Agent, request, type RequestOptions } from 'node:https';
import { clientOptions } from '../src/tls/policy.js';
import { NodeHttpsAgent, startTunnelServer } from '../src/tunnel/index.js';
import { clusterPki, startPeer, type ClusterPki } from '../test/tunnel/helpers.js';
import { percentile, result, type Benchmark, type BenchResult } from './lib.js';

const NODE = 'bench-node';

/** One small GET; resolves with its duration in ms. */
function timedGet(o: RequestOptions): Promise<number> {
  const start = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const req = request(o, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - start) / 1e6) : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

async function series(o: RequestOptions, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await timedGet(o);
}

interface Latency {
  tunnel: number[];
  direct: number[];
  tunnelNew: number[];
  directNew: number[];
}

/**
 * The control plane (tunnel server + HTTPS client) runs here; the node (agent + endpoint) in a child process, its
 * endpoint also listening on loopback for the direct requests. Sequential requests, one in flight.
 */
async function latency(pki: ClusterPki): Promise<Latency> {
  const serving = await pki.tunnelServing();
  const api = await pki.apiserverClient();
  const server = await startTunnelServer({ tls: { cert: serving.cert, key: serving.key, clientCa: pki.ca } });
  const node = startPeer({ role: 'agent', node: NODE, ca: pki.ca, client: await pki.nodeClient(NODE), serving: await pki.nodeServing(NODE), url: server.url, listen: true });
  const agents: Agent[] = [];
  try {
    const { port, exited } = (await node.next()) as { port?: number; exited?: number };
    if (!port) throw new Error(`node child failed (${exited}): ${node.out()}`);
    await server.waitFor(NODE, 10_000);
    const tls = clientOptions({ cert: api.cert, key: api.key, ca: pki.ca });
    const kept = (a: Agent) => (agents.push(a), a);
    const viaTunnel: RequestOptions = { host: NODE, path: '/', agent: kept(new NodeHttpsAgent(server, { cert: api.cert, key: api.key, ca: pki.ca, keepAlive: true, maxSockets: 1 })) };
    const direct: RequestOptions = { host: '127.0.0.1', port, headers: { host: NODE }, path: '/', agent: kept(new Agent({ ...tls, keepAlive: true, maxSockets: 1 })) };
    const viaTunnelNew: RequestOptions = { ...viaTunnel, agent: kept(new NodeHttpsAgent(server, { cert: api.cert, key: api.key, ca: pki.ca, keepAlive: false })) };
    const directNew: RequestOptions = { ...direct, agent: kept(new Agent({ ...tls, keepAlive: false })) };

    // Warm-up: JIT, TLS session state, the tunnel stream's windows.
    await series(viaTunnel, 1000);
    await series(direct, 1000);
    await series(viaTunnelNew, 50);
    await series(directNew, 50);
    const out: Latency = { tunnel: [], direct: [], tunnelNew: [], directNew: [] };
    // Alternating request by request, so that whatever else the machine does hits both paths alike.
    for (let i = 0; i < 5000; i++) {
      out.tunnel.push(await timedGet(viaTunnel));
      out.direct.push(await timedGet(direct));
    }
    // Apart, so that their handshakes do not slow the kept-alive requests above.
    for (let i = 0; i < 200; i++) {
      out.tunnelNew.push(await timedGet(viaTunnelNew));
      out.directNew.push(await timedGet(directNew));
    }
    return out;
  } finally {
    for (const a of agents) a.destroy();
    node.close();
    await node.exited(20_000);
    await server.close();
  }
}

interface MemoryFigures {
  rssKib: number;
  heapKib: number;
  externalKib: number;
  connected: number;
}

/** Memory a server process holds per connection: N agents (or bare mTLS clients) dial it from another process. */
async function memory(pki: ClusterPki, kind: 'tunnel' | 'tls', clients: Array<{ node: string; cert: string; key: string }>): Promise<MemoryFigures> {
  const serving = await pki.tunnelServing();
  const server = startPeer({ role: 'memory-server', kind, ca: pki.ca, serving, expect: clients.length });
  const first = (await server.next()) as { url?: string };
  if (!first.url) throw new Error(`memory server failed: ${server.out()}`);
  const agents = startPeer({ role: 'agents', ca: pki.ca, url: first.url, clients, plain: kind === 'tls' });
  try {
    const ready = await agents.next(90_000);
    if (!ready.ready) throw new Error(`agents failed: ${agents.out()}`);
    type Sample = { rss: number; heapUsed: number; external: number };
    const m = (await server.next(90_000)) as { started: Sample; connected: Sample; count: number };
    const per = (k: keyof Sample) => (m.connected[k] - m.started[k]) / m.count / 1024;
    return { rssKib: per('rss'), heapKib: per('heapUsed'), externalKib: per('external'), connected: m.count };
  } finally {
    agents.close();
    await agents.exited(30_000);
    server.close();
    await server.exited(30_000);
  }
}

const ms = (x: number) => Math.round(x * 1000) / 1000;

const bench: Benchmark = {
  names: ['tunnel.latency.p50_ms', 'tunnel.latency.p99_ms', 'tunnel.rss_kib_per_agent'],
  async run() {
    const only = process.argv.slice(2).filter((a) => !a.startsWith('-'));
    const want = (n: string) => only.length === 0 || only.some((p) => n.startsWith(p));
    const pki = await clusterPki('bench cluster root CA');
    const out: BenchResult[] = [];

    if (want('tunnel.latency')) {
      const l = await latency(pki);
      for (const a of Object.values(l)) a.sort((x: number, y: number) => x - y);
      const how = {
        method: 'sequential small HTTPS GETs, one in flight, tunnel and direct alternating; kept-alive inner TLS connection (one tunnel stream reused); control plane and node in separate processes',
        samples: l.tunnel.length,
        new_connection_p50_ms: ms(percentile(l.tunnelNew, 50)),
        direct_new_connection_p50_ms: ms(percentile(l.directNew, 50)),
      };
      for (const p of [50, 99]) {
        out.push(result(`tunnel.latency.p${p}_ms`, percentile(l.tunnel, p), 'ms', 'direct TLS request to the same endpoint, kept-alive, same run', percentile(l.direct, p), how));
      }
    }

    if (want('tunnel.rss_kib_per_agent')) {
      const n = 1000;
      const clients = [];
      for (let i = 0; i < n; i++) clients.push({ node: `bench-${i}`, ...(await pki.nodeClient(`bench-${i}`)) });
      const plain = await memory(pki, 'tls', clients);
      const tunnel = await memory(pki, 'tunnel', clients);
      out.push(
        result('tunnel.rss_kib_per_agent', tunnel.rssKib, 'KiB', `a bare mTLS server holding the same ${n} connections (no HTTP/2)`, plain.rssKib, {
          agents: tunnel.connected,
          heap_kib_per_agent: ms(tunnel.heapKib),
          external_kib_per_agent: ms(tunnel.externalKib),
          anchor_heap_kib_per_connection: ms(plain.heapKib),
          method: 'server process RSS after a full GC, connected minus listening, divided by the agents; agents dial from another process',
        }),
      );
    }
    return out;
  },
};
export default bench;
