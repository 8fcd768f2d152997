// The control plane as real processes for end-to-end tests: the CA service child and the host child (`trustplane serve`).
import { existsSync, readFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { FleetClient } from '../../src/fleet/client.js';
import { caPaths, hostPaths } from '../../src/util/datadir.js';
import { waitFor } from '../../src/util/wait.js';
import { startCaChild, type CaChild } from '../ca/helpers.js';
import { killChild, tpSpawn } from './cli.js';

export interface HostChild {
  child: ChildProcess;
  output(): string;
  url(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** TP_HOST_NODE_ARGS (space-separated) is passed to the host's node, to profile it under a test or benchmark: node refuses --cpu-prof in NODE_OPTIONS. */
export async function startHostChild(dataDir: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<HostChild> {
  const nodeArgs = (process.env.TP_HOST_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const proc = tpSpawn(['serve', '--data-dir', dataDir, ...args], env, nodeArgs);
  const ep = hostPaths(dataDir).endpoint;
  try {
    await waitFor('the control plane host to write its endpoint', () => {
      if (proc.child.exitCode !== null) throw new Error(`the host exited: ${proc.output()}`);
      return existsSync(ep) && (JSON.parse(readFileSync(ep, 'utf8')) as { pid: number }).pid === proc.child.pid ? true : undefined;
    }, 60000);
  } catch (e) {
    await killChild(proc.child);
    throw e;
  }
  return {
    child: proc.child,
    output: proc.output,
    url: () => (JSON.parse(readFileSync(ep, 'utf8')) as { url: string }).url,
    stop: (signal: NodeJS.Signals = 'SIGTERM') => killChild(proc.child, signal),
  };
}

export interface ControlPlane {
  dataDir: string;
  ca: CaChild;
  host: HostChild;
  fleet(): FleetClient;
  restartHost(signal?: NodeJS.Signals): Promise<void>;
  stop(): Promise<void>;
}

/**
 * `caArgs` / `caEnv` go to `trustplane ca serve` (e.g. `--keystore pkcs11 ...` and SOFTHSM2_CONF); `hostArgs` to
 * `trustplane serve`.
 */
export async function startControlPlane(dataDir: string, o: { hostArgs?: string[]; caArgs?: string[]; caEnv?: NodeJS.ProcessEnv } = {}): Promise<ControlPlane> {
  const ca = await startCaChild(dataDir, o.caArgs, o.caEnv);
  let host: HostChild;
  try {
    host = await startHostChild(dataDir, o.hostArgs);
  } catch (e) {
    await ca.stop();
    throw e;
  }
  const clients: FleetClient[] = [];
  const cp: ControlPlane = {
    dataDir,
    ca,
    host,
    fleet() {
      const p = caPaths(dataDir);
      const c = new FleetClient({ url: cp.host.url(), cert: readFileSync(p.fleetCert, 'utf8'), key: readFileSync(p.fleetKey, 'utf8'), ca: readFileSync(p.serviceCa, 'utf8') });
      clients.push(c);
      return c;
    },
    async restartHost(signal: NodeJS.Signals = 'SIGKILL') {
      await cp.host.stop(signal);
      cp.host = await startHostChild(dataDir, o.hostArgs);
    },
    async stop() {
      for (const c of clients) c.close();
      await cp.host.stop();
      await cp.ca.stop();
    },
  };
  return cp;
}
