// Prometheus metrics of the control plane host: per cluster and authority, CA expiry and time left; the rotation phase;
// nodes per credential generation; certificates signed and refused. Read at scrape time from the fleet (one CA call and
// one store list per cluster), so they are never stale.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Registry } from 'prom-client';
import { AUTHORITY_KINDS } from '../ca/authority.js';
import type { Fleet } from './fleet.js';
import { ROTATION_PHASES } from './rotation.js';

export interface HostMetrics {
  registry: Registry;
  /** Counts one answer of the CA service to a cluster's signer controller. */
  countSigning(cluster: string, signer: string, outcome: 'signed' | 'refused'): void;
}

const STATUSES = ['PROVISIONING', 'RUNNING', 'RECONCILING', 'DEGRADED', 'STOPPING', 'ERROR'] as const;

export function createHostMetrics(fleet: () => Fleet | undefined): HostMetrics {
  const registry = new Registry();
  const signed = new Counter({ name: 'trustplane_certificates_signed_total', help: 'Certificates the CA service issued for CSRs of the cluster', labelNames: ['cluster', 'signer'], registers: [registry] });
  const refused = new Counter({ name: 'trustplane_certificates_refused_total', help: 'CSRs of the cluster the CA service refused (they are marked Failed)', labelNames: ['cluster', 'signer'], registers: [registry] });

  const expiration = new Gauge({ name: 'trustplane_ca_expiration_timestamp_seconds', help: "Not-after of the authority's active generation, Unix seconds", labelNames: ['cluster', 'authority'], registers: [registry] });
  const ttl = new Gauge({ name: 'trustplane_ca_ttl_seconds', help: "Time left until the authority's active generation expires", labelNames: ['cluster', 'authority'], registers: [registry] });
  const generation = new Gauge({ name: 'trustplane_ca_active_generation', help: "The authority's active generation number", labelNames: ['cluster', 'authority'], registers: [registry] });
  const phase = new Gauge({ name: 'trustplane_rotation_phase', help: '1 for the phase the credential rotation of the authority is in (done: none running)', labelNames: ['cluster', 'authority', 'phase'], registers: [registry] });
  const status = new Gauge({ name: 'trustplane_cluster_status', help: "1 for the cluster's status", labelNames: ['cluster', 'status'], registers: [registry] });
  const nodes = new Gauge({ name: 'trustplane_nodes_by_credential_generation', help: 'Nodes whose newest live client certificate was issued by this cluster root CA generation', labelNames: ['cluster', 'generation'], registers: [registry] });

  // Every gauge is recomputed before each scrape.
  const collect = async () => {
    const f = fleet();
    for (const g of [expiration, ttl, generation, phase, status, nodes]) g.reset();
    if (!f) return;
    const now = Date.now();
    for (const c of await f.list().catch(() => [])) {
      for (const s of STATUSES) status.set({ cluster: c.name, status: s }, c.status === s ? 1 : 0);
      for (const a of c.authorities) {
        const active = a.generations.find((g) => g.state === 'active');
        if (!active?.notAfter) continue;
        const t = Date.parse(active.notAfter) / 1000;
        expiration.set({ cluster: c.name, authority: a.kind }, t);
        ttl.set({ cluster: c.name, authority: a.kind }, Math.round(t - now / 1000));
        generation.set({ cluster: c.name, authority: a.kind }, active.generation);
      }
      for (const kind of AUTHORITY_KINDS) {
        const r = c.rotation?.authority === kind ? c.rotation : undefined;
        for (const p of ROTATION_PHASES) phase.set({ cluster: c.name, authority: kind, phase: p }, (r?.phase ?? 'done') === p ? 1 : 0);
      }
      const counts = await f.nodesByGeneration(c.name).catch(() => new Map<number, number>());
      for (const [gen, n] of counts) nodes.set({ cluster: c.name, generation: String(gen) }, n);
    }
  };

  const metrics = registry.metrics.bind(registry);
  registry.metrics = async () => {
    await collect();
    return metrics();
  };

  return {
    registry,
    countSigning(cluster, signer, outcome) {
      (outcome === 'signed' ? signed : refused).inc({ cluster, signer });
    },
  };
}

/** Plain HTTP on loopback: GET /metrics in the Prometheus text format (it holds no secret). */
export async function serveMetrics(m: HostMetrics, host: string, port: number): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('only GET /metrics is served here\n');
      return;
    }
    m.registry.metrics().then(
      (body) => {
        res.writeHead(200, { 'Content-Type': m.registry.contentType });
        res.end(body);
      },
      (e: Error) => {
        res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end(`${e.message}\n`);
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const p = (server.address() as AddressInfo).port;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${p}/metrics`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
