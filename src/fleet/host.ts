// The control plane host process (`trustplane serve`): the fleet API and, per cluster, its store, API server and controllers.
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { CaClient } from '../ca/client.js';
import { localCredential } from '../ca/credential.js';
import type { Endpoint as CaEndpoint } from '../ca/process.js';
import type { MinVersion } from '../tls/policy.js';
import { systemClock, type Clock } from '../util/clock.js';
import { caPaths, hostPaths } from '../util/datadir.js';
import { TrustplaneError } from '../util/errors.js';
import { writeFileAtomic } from '../util/files.js';
import { silentLogger, type Logger } from '../util/log.js';
import { claimPidFile } from '../util/pidfile.js';
import { Fleet } from './fleet.js';
import { startFleetServer } from './server.js';
import { createHostMetrics, serveMetrics } from './metrics.js';

export interface HostOptions {
  dataDir: string;
  /** Loopback address every listener binds to; default 127.0.0.1. */
  host?: string;
  /** The fleet API's port; 0 = a free one. */
  port?: number;
  minVersion?: MinVersion;
  clock?: Clock;
  log?: Logger;
  /** How long to wait for the CA service to answer at start. */
  caWaitMs?: number;
  /** How often the lifetime controller looks at every cluster's CAs; default 60 s. */
  lifetimeIntervalMs?: number;
  /** Port of the plain-HTTP Prometheus /metrics listener on the same loopback host; 0 = a free one. */
  metricsPort?: number;
}

export interface HostEndpoint {
  url: string;
  pid: number;
  /** http://host:port/metrics (Prometheus). */
  metricsUrl?: string;
}

export interface RunningHost {
  url: string;
  metricsUrl: string;
  fleet: Fleet;
  stop(): Promise<void>;
}

const PLACEHOLDER = [{ type: 'CN' as const, value: 'trustplane control plane host' }];

/** The CA service of this data dir, as the local fleet administrator, once it answers. */
async function connectCa(dataDir: string, waitMs: number): Promise<{ client: CaClient; url: string; serviceCa: string }> {
  const p = caPaths(dataDir);
  const deadline = Date.now() + waitMs;
  let last = 'its endpoint file is missing';
  for (;;) {
    if (existsSync(p.endpoint) && existsSync(p.fleetKey)) {
      const ep = JSON.parse(readFileSync(p.endpoint, 'utf8')) as CaEndpoint;
      const serviceCa = readFileSync(p.serviceCa, 'utf8');
      const client = new CaClient({ url: ep.url, cert: readFileSync(p.fleetCert, 'utf8'), key: readFileSync(p.fleetKey, 'utf8'), ca: serviceCa });
      try {
        await client.service();
        return { client, url: ep.url, serviceCa };
      } catch (e) {
        client.close();
        last = (e as Error).message;
      }
    }
    if (Date.now() >= deadline)
      throw new TrustplaneError('Unavailable', `the CA service for data dir ${dataDir} is not answering: ${last}`, 'start it first with `trustplane ca serve` (or use `trustplane up`, which starts both)');
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function runHost(o: HostOptions): Promise<RunningHost> {
  const paths = hostPaths(o.dataDir);
  mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  const release = claimPidFile(paths.pid, `a control plane host for data dir ${o.dataDir}`);
  const host = o.host ?? '127.0.0.1';
  const log = o.log ?? silentLogger;
  const clock = o.clock ?? systemClock;
  let ca: Awaited<ReturnType<typeof connectCa>> | undefined;
  let fleet: Fleet | undefined;
  let metricsServer: Awaited<ReturnType<typeof serveMetrics>> | undefined;
  try {
    ca = await connectCa(o.dataDir, o.caWaitMs ?? 30_000);
    const metrics = createHostMetrics(() => fleet);
    fleet = new Fleet({ dataDir: o.dataDir, host, fleetCa: ca.client, caUrl: ca.url, serviceCa: ca.serviceCa, clock, minVersion: o.minVersion, log, countSigning: metrics.countSigning });
    metricsServer = await serveMetrics(metrics, host, o.metricsPort ?? 0);
    await fleet.resume();
    fleet.startLifetimeController(o.lifetimeIntervalMs ?? 60_000);
    const c = ca.client;
    const ips = [...new Set(['127.0.0.1', '::1', ...(/^[\d.]+$|:/.test(host) ? [host] : [])])];
    const tls = await localCredential(PLACEHOLDER, (csr) => c.issueServiceServer(csr, { dns: ['localhost'], ip: ips }));
    const server = await startFleetServer({ fleet, host, port: o.port ?? 0, cert: tls.cert, key: tls.key, serviceCa: ca.serviceCa, minVersion: o.minVersion });
    const endpoint: HostEndpoint = { url: server.url, pid: process.pid, metricsUrl: metricsServer.url };
    writeFileAtomic(paths.endpoint, JSON.stringify(endpoint, null, 2) + '\n', 0o644);
    log.info({ url: server.url, metrics: metricsServer.url }, 'control plane host serving');
    let stopped = false;
    const f = fleet;
    const caClient = ca.client;
    return {
      url: server.url,
      metricsUrl: metricsServer.url,
      fleet: f,
      async stop() {
        if (stopped) return;
        stopped = true;
        rmSync(paths.endpoint, { force: true });
        await server.close();
        await metricsServer?.close();
        await f.stop();
        caClient.close();
        release();
      },
    };
  } catch (e) {
    await metricsServer?.close();
    await fleet?.stop();
    ca?.client.close();
    release();
    throw e;
  }
}
