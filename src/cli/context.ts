// How a CLI command finds the local control plane: the data dir, the CA service endpoint and the fleet credential.
import { existsSync, readFileSync } from 'node:fs';
import { CaClient } from '../ca/client.js';
import type { Endpoint } from '../ca/process.js';
import { FleetClient } from '../fleet/client.js';
import type { HostEndpoint } from '../fleet/host.js';
import { caPaths, defaultDataDir, hostPaths } from '../util/datadir.js';
import { TrustplaneError } from '../util/errors.js';

export interface GlobalOptions {
  dataDir?: string;
  output?: string;
}

export function dataDirOf(o: GlobalOptions): string {
  return o.dataDir ?? defaultDataDir();
}

export function readEndpoint(dataDir: string): Endpoint {
  const p = caPaths(dataDir);
  if (!existsSync(p.endpoint))
    throw new TrustplaneError('Unavailable', `no CA service is running for data dir ${dataDir}`, 'start one with `trustplane up` (or `trustplane ca serve`), or pass the right --data-dir');
  return JSON.parse(readFileSync(p.endpoint, 'utf8')) as Endpoint;
}

/** A CA client acting as the local fleet administrator. */
export function fleetClient(dataDir: string): CaClient {
  const p = caPaths(dataDir);
  const ep = readEndpoint(dataDir);
  if (!existsSync(p.fleetKey)) throw new TrustplaneError('Unauthorized', `no fleet credential in ${p.dir}`, 'it is written by the CA service on its first start');
  return new CaClient({ url: ep.url, cert: readFileSync(p.fleetCert, 'utf8'), key: readFileSync(p.fleetKey, 'utf8'), ca: readFileSync(p.serviceCa, 'utf8') });
}

/** A fleet API client (the control plane host) acting as the local fleet administrator. */
export function fleetApi(dataDir: string): FleetClient {
  const p = caPaths(dataDir);
  const h = hostPaths(dataDir);
  if (!existsSync(h.endpoint))
    throw new TrustplaneError('Unavailable', `no control plane host is running for data dir ${dataDir}`, 'start one with `trustplane up` (or `trustplane serve` after `trustplane ca serve`), or pass the right --data-dir');
  if (!existsSync(p.fleetKey)) throw new TrustplaneError('Unauthorized', `no fleet credential in ${p.dir}`, 'it is written by the CA service on its first start');
  const ep = JSON.parse(readFileSync(h.endpoint, 'utf8')) as HostEndpoint;
  return new FleetClient({ url: ep.url, cert: readFileSync(p.fleetCert, 'utf8'), key: readFileSync(p.fleetKey, 'utf8'), ca: readFileSync(p.serviceCa, 'utf8') });
}

/** Runs `fn` with a client and always closes it. */
export async function using<C extends { close(): void }, T>(client: C, fn: (c: C) => Promise<T>): Promise<T> {
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}
