// Scraping the control plane host's /metrics as Prometheus would: HTTPS against the CA service's own CA, with the
// fleet administrator's client certificate or the host's bearer token (or, to see it refused, neither).
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import type { HostEndpoint } from '../../src/fleet/host.js';
import { caPaths, hostPaths } from '../../src/util/datadir.js';

export type ScrapeCredential = 'token' | 'admin-cert' | 'none' | { token: string } | { cert: string; key: string };

export function scrapeMetrics(dataDir: string, cred: ScrapeCredential = 'token', path = '/metrics'): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  const ep = JSON.parse(readFileSync(hostPaths(dataDir).endpoint, 'utf8')) as HostEndpoint;
  const ca = caPaths(dataDir);
  const url = new URL(path, ep.metricsUrl!);
  const headers: Record<string, string> = {};
  let tls: { cert?: string; key?: string } = {};
  if (cred === 'token') headers.authorization = `Bearer ${readFileSync(ep.metricsTokenFile!, 'utf8').trim()}`;
  else if (cred === 'admin-cert') tls = { cert: readFileSync(ca.fleetCert, 'utf8'), key: readFileSync(ca.fleetKey, 'utf8') };
  else if (typeof cred === 'object' && 'token' in cred) headers.authorization = `Bearer ${cred.token}`;
  else if (typeof cred === 'object') tls = cred;
  return new Promise((resolve, reject) => {
    const req = request(url, { ca: readFileSync(ca.serviceCa, 'utf8'), ...tls, headers, agent: false, timeout: 30000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within 30 s`)));
    req.on('error', reject);
    req.end();
  });
}
