// The fleet API: cluster lifecycle, credentials and node pools as JSON over HTTP/2, for fleet callers of the CA service only.
import { callerFromSubject } from '../ca/server.js';
import type { CallerIdentity } from '../ca/service.js';
import type { MinVersion } from '../tls/policy.js';
import { forbidden, invalid, notFound } from '../util/errors.js';
import { asObject, startH2JsonServer, type RunningH2JsonServer } from '../tls/h2-json.js';
import { MAX_BODY_BYTES, type EnrollRequest, type BootstrapTokenRequest, type CreateClusterRequest, type CredentialsRequest, type UpdateClusterRequest } from './api.js';
import type { Fleet } from './fleet.js';

export interface FleetServerOptions {
  fleet: Fleet;
  host: string;
  port: number;
  cert: string;
  key: string;
  /** The CA service's own CA: fleet callers hold certificates it issued. */
  serviceCa: string;
  minVersion?: MinVersion;
}

function fleetCaller(subject: Record<string, string | string[] | undefined>): CallerIdentity {
  const c = callerFromSubject(subject);
  if (c.role !== 'fleet') throw forbidden(`the fleet API is for fleet administrators; ${c.name} is not one`);
  return c;
}

/** A node pool's serving options from a request body: string arrays or absent. */
function poolServing(b: Record<string, unknown>): { allowedCidrs?: string[]; dnsSuffixes?: string[] } {
  const list = (k: 'allowedCidrs' | 'dnsSuffixes') => {
    const v = b[k];
    if (v === undefined) return undefined;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw invalid(`"${k}" must be an array of strings`);
    return v as string[];
  };
  const allowedCidrs = list('allowedCidrs');
  const dnsSuffixes = list('dnsSuffixes');
  return { ...(allowedCidrs ? { allowedCidrs } : {}), ...(dnsSuffixes ? { dnsSuffixes } : {}) };
}

/** A pool's shielded policy from a request body: absent, or { pcrs: number[] }. */
function poolShielded(b: Record<string, unknown>): { pcrs: number[]; ekCaBundle?: string } | undefined {
  const s = b.shielded;
  if (s === undefined || s === null || s === false) return undefined;
  const pcrs = (s as { pcrs?: unknown }).pcrs;
  if (typeof s !== 'object' || !Array.isArray(pcrs) || !pcrs.every((x) => typeof x === 'number')) throw invalid('"shielded" must be { "pcrs": [numbers] }');
  const ekCaBundle = (s as { ekCaBundle?: unknown }).ekCaBundle;
  if (ekCaBundle !== undefined && typeof ekCaBundle !== 'string') throw invalid('"shielded.ekCaBundle" must be a PEM string');
  return { pcrs: pcrs as number[], ...(ekCaBundle ? { ekCaBundle } : {}) };
}

async function route(f: Fleet, method: string, parts: string[], body: () => Promise<unknown>): Promise<[number, unknown]> {
  const [v1, top, c, sub, p, sub2] = parts;
  if (v1 !== 'v1' || top !== 'clusters') throw notFound(`no route for ${method} /${parts.join('/')}`);
  const cluster = decodeURIComponent(c ?? '');
  const pool = decodeURIComponent(p ?? '');
  switch (`${method} ${parts.length}${sub ? ` ${sub}` : ''}${sub2 ? ` ${sub2}` : ''}`) {
    case 'GET 2':
      return [200, { clusters: await f.list() }];
    case 'POST 2':
      return [201, await f.create(asObject(await body(), 'request') as unknown as CreateClusterRequest)];
    case 'GET 3':
      return [200, await f.describe(cluster)];
    case 'PATCH 3':
      return [200, await f.update(cluster, asObject(await body(), 'request') as UpdateClusterRequest)];
    case 'POST 6 nodes revocation':
      return [201, await f.revokeNode(cluster, pool)];
    case 'GET 4 lifetime':
      return [200, await f.lifetime(cluster)];
    case 'DELETE 3':
      await f.delete(cluster);
      return [200, { deleted: cluster }];
    case 'POST 4 credentials':
      return [201, await f.credentials(cluster, asObject(await body(), 'request') as unknown as CredentialsRequest)];
    case 'GET 4 node-pools':
      return [200, { nodePools: await f.listPools(cluster) }];
    case 'POST 4 node-pools': {
      const b = asObject(await body(), 'request');
      if (typeof b.name !== 'string') throw invalid('needs "name"');
      return [201, await f.createPool(cluster, b.name, poolServing(b), poolShielded(b))];
    }
    case 'PUT 5 node-pools':
      return [200, await f.updatePool(cluster, pool, poolServing(asObject(await body(), 'request')))];
    case 'DELETE 5 node-pools':
      return [200, { deleted: pool, ...(await f.deletePool(cluster, pool)) }];
    case 'GET 6 node-pools enrollments':
      return [200, { enrollments: await f.listEnrollments(cluster, pool) }];
    case 'POST 6 node-pools enrollments': {
      const b = asObject(await body(), 'request');
      if (typeof b.nodeName !== 'string' || typeof b.ekPublic !== 'string') throw invalid('needs "nodeName" and "ekPublic" (PEM) strings');
      if (b.pcrValues !== undefined && (typeof b.pcrValues !== 'object' || b.pcrValues === null || Array.isArray(b.pcrValues))) throw invalid('"pcrValues" must be an object of PCR index to hex value');
      return [201, await f.enrollNode(cluster, pool, b as unknown as EnrollRequest)];
    }
    case 'DELETE 7 node-pools enrollments':
      return [200, await f.unenrollNode(cluster, pool, decodeURIComponent(parts[6] ?? ''))];
    case 'POST 6 node-pools bootstrap-tokens': {
      const b = asObject(await body(), 'request') as BootstrapTokenRequest;
      if (b.ttlSeconds !== undefined && typeof b.ttlSeconds !== 'number') throw invalid('"ttlSeconds" must be a number');
      if (b.nodeName !== undefined && typeof b.nodeName !== 'string') throw invalid('"nodeName" must be a string');
      return [201, await f.bootstrapToken(cluster, pool, b)];
    }
  }
  throw notFound(`no route for ${method} /${parts.join('/')}`);
}

export function startFleetServer(o: FleetServerOptions): Promise<RunningH2JsonServer> {
  return startH2JsonServer<CallerIdentity>({
    host: o.host,
    port: o.port,
    cert: o.cert,
    key: o.key,
    clientCa: o.serviceCa,
    minVersion: o.minVersion,
    maxBodyBytes: MAX_BODY_BYTES,
    service: 'control plane host',
    identify: fleetCaller,
    route: (_caller, method, parts, body) => route(o.fleet, method, parts, body),
  });
}
