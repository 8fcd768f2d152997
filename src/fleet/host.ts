// The control plane host process (`trustplane serve`): the fleet API and, per cluster, its store, API server and controllers.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { CaClient } from '../ca/client.js';
import { localCredential } from '../ca/credential.js';
import type { Endpoint as CaEndpoint } from '../ca/process.js';
import type { MinVersion } from '../tls/policy.js';
import { systemClock, type Clock } from '../util/clock.js';
import { caPaths, hostPaths } from '../util/datadir.js';
import { invalid, TrustplaneError } from '../util/errors.js';
import { writeFileAtomic } from '../util/files.js';
import { silentLogger, type Logger } from '../util/log.js';
import { claimPidFile } from '../util/pidfile.js';
import { Fleet } from './fleet.js';
import { startFleetServer } from './server.js';
import { createHostMetrics, serveMetrics } from './metrics.js';
import { startConsole, type ConsoleOptions, type RunningConsole } from '../console/server.js';

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
  /** Port of the HTTPS Prometheus /metrics listener on the same loopback host; 0 = a free one. */
  metricsPort?: number;
  /** How far back a client seen presenting an old CA generation holds a rotation's completion; default 10 minutes. */
  observedWindowMs?: number;
  /** Port of the HTTPS web console on the same loopback host; 0 = a free one; default the one kept in <data-dir>/host/console-port, else a free one. */
  consolePort?: number;
}

export interface HostEndpoint {
  url: string;
  pid: number;
  /** https://host:port/metrics (Prometheus): for the fleet administrator's client certificate or the bearer token below. */
  metricsUrl?: string;
  /** The file holding the bearer token for metricsUrl. */
  metricsTokenFile?: string;
  /** https://host:port/ (the web console): for the fleet administrator's client certificate, or a login with the same token. */
  consoleUrl?: string;
}

export interface RunningHost {
  url: string;
  metricsUrl: string;
  consoleUrl: string;
  fleet: Fleet;
  stop(): Promise<void>;
}

const PLACEHOLDER = [{ type: 'CN' as const, value: 'trustplane control plane host' }];

/** The metrics bearer token of this data dir: made once (0600), then the same across restarts so that scrape configs keep working. */
function metricsToken(path: string): string {
  if (!existsSync(path)) writeFileAtomic(path, `${randomBytes(32).toString('base64url')}\n`);
  // An older or hand-made file looser than 0600 is tightened: the token is a credential.
  chmodSync(path, 0o600);
  const token = readFileSync(path, 'utf8').trim();
  if (token.length < 16) throw invalid(`the metrics token in ${path} is shorter than 16 characters`, `remove ${path}; the host makes a new one at its next start`);
  return token;
}

/**
 * The web console on the port asked for; else on the one kept in the data dir, or a free one should another process
 * hold it now. The port it got is kept for the next start.
 */
async function listenConsole(o: Omit<ConsoleOptions, 'port'>, asked: number | undefined, keptFile: string): Promise<RunningConsole> {
  const kept = asked === undefined && existsSync(keptFile) ? Number(readFileSync(keptFile, 'utf8').trim()) : undefined;
  let running: RunningConsole;
  if (kept !== undefined && Number.isInteger(kept) && kept > 0 && kept <= 65535) {
    running = await startConsole({ ...o, port: kept }).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EADDRINUSE') throw e;
      o.log.warn({ port: kept }, 'the web console port kept in the data dir is taken; using a free one');
      return startConsole({ ...o, port: 0 });
    });
  } else running = await startConsole({ ...o, port: asked ?? 0 });
  writeFileAtomic(keptFile, `${new URL(running.url).port}\n`);
  return running;
}

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
  let consoleServer: RunningConsole | undefined;
  try {
    ca = await connectCa(o.dataDir, o.caWaitMs ?? 30_000);
    const metrics = createHostMetrics(() => fleet);
    fleet = new Fleet({ dataDir: o.dataDir, host, fleetCa: ca.client, caUrl: ca.url, serviceCa: ca.serviceCa, clock, minVersion: o.minVersion, log, countSigning: metrics.countSigning, observedWindowMs: o.observedWindowMs });
    // One serving certificate for the fleet API, the metrics listener and the web console, from the CA service's own CA.
    const c = ca.client;
    const ips = [...new Set(['127.0.0.1', '::1', ...(/^[\d.]+$|:/.test(host) ? [host] : [])])];
    const tls = await localCredential(PLACEHOLDER, (csr) => c.issueServiceServer(csr, { dns: ['localhost'], ip: ips }));
    const metricsAccess = { cert: tls.cert, key: tls.key, clientCa: ca.serviceCa, token: metricsToken(paths.metricsToken), minVersion: o.minVersion };
    metricsServer = await serveMetrics(metrics, host, o.metricsPort ?? 0, metricsAccess);
    // The console reads what the metrics show and more, so it takes the same credentials: the admin certificate or the token.
    consoleServer = await listenConsole({ fleet, host, cert: tls.cert, key: tls.key, clientCa: ca.serviceCa, token: metricsAccess.token, clock, log, minVersion: o.minVersion }, o.consolePort, paths.consolePort);
    await fleet.resume();
    fleet.startLifetimeController(o.lifetimeIntervalMs ?? 60_000);
    const server = await startFleetServer({ fleet, host, port: o.port ?? 0, cert: tls.cert, key: tls.key, serviceCa: ca.serviceCa, minVersion: o.minVersion });
    const endpoint: HostEndpoint = { url: server.url, pid: process.pid, metricsUrl: metricsServer.url, metricsTokenFile: paths.metricsToken, consoleUrl: consoleServer.url };
    writeFileAtomic(paths.endpoint, JSON.stringify(endpoint, null, 2) + '\n');
    log.info({ url: server.url, metrics: metricsServer.url, console: consoleServer.url }, 'control plane host serving');
    let stopped = false;
    const f = fleet;
    const caClient = ca.client;
    const cons = consoleServer;
    return {
      url: server.url,
      metricsUrl: metricsServer.url,
      consoleUrl: cons.url,
      fleet: f,
      async stop() {
        if (stopped) return;
        stopped = true;
        rmSync(paths.endpoint, { force: true });
        await server.close();
        await metricsServer?.close();
        await cons.close();
        await f.stop();
        caClient.close();
        release();
      },
    };
  } catch (e) {
    await consoleServer?.close();
    await metricsServer?.close();
    await fleet?.stop();
    ca?.client.close();
    release();
    throw e;
  }
}
