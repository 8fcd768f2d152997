// Prometheus metrics of the control plane host: per cluster and authority, CA expiry and time left; the rotation phase
// and since when; nodes per credential generation, on a retired one, near the end of their certificate's life;
// certificates signed and refused. Read at scrape time from the fleet (one CA call and one store list per cluster), so
// they are never stale. Node counts are per cluster, never per node (bounded series at 15,000 nodes). The alert rules
// and dashboard in deploy/monitoring/ are built on exactly these names.
import type { IncomingMessage } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Registry } from 'prom-client';
import { AUTHORITY_KINDS } from '../ca/authority.js';
import { adminAccess } from './admin-access.js';
import { serverOptions, type MinVersion } from '../tls/policy.js';
import type { Fleet } from './fleet.js';
import { ListenerGuard } from '../tls/listener-guard.js';
import { NEAR_EXPIRY_LIFE_FRACTION } from './node-credential-summary.js';
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
  const phaseStarted = new Gauge({ name: 'trustplane_rotation_phase_started_timestamp_seconds', help: 'When the running credential rotation of the authority entered its current phase, Unix seconds (no series while none runs)', labelNames: ['cluster', 'authority', 'phase'], registers: [registry] });
  const onRetired = new Gauge({ name: 'trustplane_nodes_on_retired_generation', help: 'Nodes whose newest live client certificate was issued by a retired cluster root CA generation (no longer trusted: they must join again)', labelNames: ['cluster'], registers: [registry] });
  const nearExpiry = new Gauge({ name: 'trustplane_nodes_near_certificate_expiry', help: `Nodes whose newest live client certificate has ${NEAR_EXPIRY_LIFE_FRACTION * 100}% or less of its lifetime left (agents renew at 70-90%, so a renewal was missed)`, labelNames: ['cluster'], registers: [registry] });

  // Every gauge is recomputed before each scrape.
  const collect = async () => {
    const f = fleet();
    for (const g of [expiration, ttl, generation, phase, status, nodes, phaseStarted, onRetired, nearExpiry]) g.reset();
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
        const entered = r && r.phase !== 'done' ? r.history[r.history.length - 1]?.at : undefined;
        if (r && entered) phaseStarted.set({ cluster: c.name, authority: kind, phase: r.phase }, Date.parse(entered) / 1000);
      }
      // A cluster whose store does not answer has no node series this scrape (rather than zeros that would look healthy).
      const summary = await f.nodeCredentialSummary(c.name).catch(() => undefined);
      if (!summary) continue;
      for (const [gen, n] of summary.byGeneration) nodes.set({ cluster: c.name, generation: String(gen) }, n);
      const retired = new Set(c.authorities.find((a) => a.kind === 'root')?.generations.filter((g) => g.state === 'retired').map((g) => g.generation));
      onRetired.set({ cluster: c.name }, [...summary.byGeneration].reduce((sum, [gen, n]) => sum + (retired.has(gen) ? n : 0), 0));
      nearExpiry.set({ cluster: c.name }, summary.nearExpiry);
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

/** Who may scrape: as kube-apiserver's /metrics, an authenticated caller only (cluster names, node counts and CA dates are not for anyone). */
export interface MetricsAccess {
  /** The listener's serving certificate and key (from the CA service's own CA, as the fleet API's). */
  cert: string;
  key: string;
  /** The CA service's own CA: a client certificate it issued to a fleet administrator is let in. */
  clientCa: string;
  /** Or a bearer token (`Authorization: Bearer ...`), kept by the host in a 0600 file of its data dir. */
  token: string;
  minVersion?: MinVersion;
}

/** Undefined when the request may be answered; else the status and why, told so that a scraper's operator knows what to fix. */
export function metricsRefusal(req: IncomingMessage, token: string): { status: 401 | 403; message: string } | undefined {
  const a = adminAccess(req, token);
  if (a.ok) return undefined;
  if (a.why === 'not-admin') return { status: 403, message: a.caller ? `metrics are for fleet administrators; ${a.caller} is not one` : a.detail };
  return {
    status: 401,
    message:
      a.why === 'wrong-token'
        ? 'the bearer token is not the metrics token of this host\n'
        : 'metrics need a credential: the fleet administrator\'s client certificate, or the bearer token in <data-dir>/host/metrics-token\n',
  };
}

/** HTTPS on loopback: GET /metrics in the Prometheus text format, for a fleet administrator's certificate or the metrics token. */
export async function serveMetrics(m: HostMetrics, host: string, port: number, access: MetricsAccess): Promise<{ url: string; close(): Promise<void> }> {
  // Idle and slow connections are closed and connections capped, as on every listener.
  const guard = new ListenerGuard({ name: 'metrics listener', tls: true, requests: 'http' });
  // A client certificate is asked for, not required: a scraper with only the bearer token completes the handshake too.
  const tls = serverOptions({ cert: access.cert, key: access.key, ca: access.clientCa, minVersion: access.minVersion, clientCert: 'request' });
  const server: Server = createServer({ ...tls, ...guard.serverOptions() }, (req, res) => {
    const refused = metricsRefusal(req, access.token);
    if (refused) {
      res.writeHead(refused.status, { 'Content-Type': 'text/plain', ...(refused.status === 401 ? { 'WWW-Authenticate': 'Bearer realm="trustplane metrics"' } : {}) });
      res.end(refused.message.endsWith('\n') ? refused.message : `${refused.message}\n`);
      return;
    }
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
  guard.attach(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const p = (server.address() as AddressInfo).port;
  return {
    url: `https://${host.includes(':') ? `[${host}]` : host}:${p}/metrics`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
