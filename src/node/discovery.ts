// Finding and authenticating the cluster before any secret is sent (kubeadm's token discovery, with the CA hash as the check).
//
// 1. Read kube-public/cluster-info anonymously over TLS that verifies nothing yet (there is nothing to verify against).
// 2. Trust its CA bundle only if a certificate in it has the public key the operator pinned (--ca-cert-hash), or is the
//    CA the operator gave (--ca-file).
// 3. Read cluster-info again over TLS verified against that bundle, with the server's name checked: a server holding a
//    certificate from another CA (another cluster's, an interceptor's) is refused here, still before any secret is sent.
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { parse } from 'yaml';
import { CLUSTER_INFO_PATH, KUBECONFIG_KEY, TUNNEL_SERVER_KEY } from '../apiserver/api/cluster-info.js';
import { parseCertificates } from '../pki/index.js';
import { clientOptions, type MinVersion } from '../tls/policy.js';
import { TrustplaneError, invalid } from '../util/errors.js';
import { connectionError, isUntrustedServerError } from './api-client.js';
import { matchCaPin, pinsOf } from './ca-pin.js';

export interface DiscoveryOptions {
  /** The API server URL the operator gave, https://host:port. */
  server: string;
  /** kubeadm-style pins, "sha256:<hex>"; at least one of these or `caFile`. */
  caCertHashes?: string[];
  /** A PEM file holding the cluster root CA (instead of, or as well as, a hash). */
  caFile?: string;
  minVersion?: MinVersion;
  timeoutMs?: number;
}

export interface DiscoveredCluster {
  /** The URL the node talks to: the one the operator gave, now verified. */
  server: string;
  /** PEM: the cluster root CA bundle, now trusted. */
  caBundle: string;
  /** The tunnel server URL, when the cluster has one. */
  tunnelServer?: string;
  /** The pins of the bundle's certificates. */
  caCertHashes: string[];
}

export function parseServerUrl(server: string): URL {
  let u: URL;
  try {
    u = new URL(server);
  } catch {
    throw invalid(`--server "${server}" is not a URL`, 'give the API server as https://HOST:PORT');
  }
  if (u.protocol !== 'https:') throw invalid(`--server "${server}" is not an https:// URL`, 'give the API server as https://HOST:PORT');
  if (u.pathname !== '/' || u.search || u.hash) throw invalid(`--server "${server}" has a path or query`, 'give only https://HOST:PORT');
  return u;
}

interface ClusterInfoContent {
  caBundle: string;
  server: string;
  tunnelServer?: string;
}

/** The cluster-info ConfigMap's content; anything else is refused as not a trustplane (or kubeadm) API server. */
export function readClusterInfo(body: unknown, from: string): ClusterInfoContent {
  const notIt = (why: string) =>
    new TrustplaneError('Unauthorized', `the server at ${from} did not answer with a usable cluster-info: ${why}`, 'check --server: it must be the cluster\'s API server');
  const cm = body as { kind?: string; data?: Record<string, string> };
  if (!cm || cm.kind !== 'ConfigMap' || typeof cm.data?.[KUBECONFIG_KEY] !== 'string') throw notIt('no ConfigMap with a kubeconfig');
  let kc: { clusters?: Array<{ cluster?: { server?: string; 'certificate-authority-data'?: string } }> };
  try {
    kc = parse(cm.data[KUBECONFIG_KEY]);
  } catch (e) {
    throw notIt(`its kubeconfig cannot be read (${(e as Error).message})`);
  }
  const cluster = kc?.clusters?.[0]?.cluster;
  const caData = cluster?.['certificate-authority-data'];
  if (!cluster || typeof caData !== 'string' || caData === '') throw notIt('its kubeconfig names no certificate authority');
  const tunnel = cm.data[TUNNEL_SERVER_KEY];
  return { caBundle: Buffer.from(caData, 'base64').toString('utf8'), server: cluster.server ?? '', ...(tunnel ? { tunnelServer: tunnel } : {}) };
}

/** One anonymous GET of cluster-info: verified against `ca` when given, else not verified at all. */
function fetchClusterInfo(server: URL, ca: string | undefined, o: DiscoveryOptions): Promise<unknown> {
  // The one TLS policy (versions, ciphers) either way; only the verification differs.
  const { cert: _c, key: _k, ca: _ca, ...policy } = clientOptions({ cert: '', key: '', ca: ca ?? '', minVersion: o.minVersion });
  const timeoutMs = o.timeoutMs ?? 15_000;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        method: 'GET',
        host: server.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: server.port || 443,
        path: CLUSTER_INFO_PATH,
        agent: false,
        ...policy,
        ...(ca ? { ca, rejectUnauthorized: true } : { rejectUnauthorized: false }),
        headers: { Accept: 'application/json', 'User-Agent': 'trustplane-node' },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) {
            return reject(
              new TrustplaneError(
                'Unavailable',
                `the server at ${server.origin} answered ${res.statusCode} for cluster-info instead of the cluster's CA`,
                'check --server: it must be a trustplane API server (`trustplane clusters describe CLUSTER` shows the endpoint)',
              ),
            );
          }
          try {
            resolve(JSON.parse(text));
          } catch {
            reject(new TrustplaneError('Unauthorized', `the server at ${server.origin} answered cluster-info with something that is not JSON`, 'check --server'));
          }
        });
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new TrustplaneError('Timeout', `the server at ${server.origin} did not answer within ${timeoutMs} ms`, 'check --server and that the control plane is running')));
    req.on('error', reject);
    req.end();
  });
}

/** Finds the cluster behind `server` and makes sure it is the one the operator named; sends no secret. */
export async function discoverCluster(o: DiscoveryOptions): Promise<DiscoveredCluster> {
  const server = parseServerUrl(o.server);
  const origin = server.origin;
  const pins = o.caCertHashes ?? [];
  if (pins.length === 0 && !o.caFile) {
    throw invalid('the cluster CA cannot be authenticated: neither --ca-cert-hash nor --ca-file was given', 'pass --ca-cert-hash sha256:... as printed by `trustplane node-pools bootstrap-token POOL --cluster CLUSTER`');
  }
  let given: string | undefined;
  if (o.caFile) {
    try {
      given = readFileSync(o.caFile, 'utf8');
      parseCertificates(given);
    } catch (e) {
      throw invalid(`--ca-file ${o.caFile} cannot be read as PEM certificates: ${(e as Error).message}`);
    }
  }

  let bundle: string;
  if (pins.length) {
    const insecure = readClusterInfo(await fetchClusterInfo(server, undefined, o).catch((e) => Promise.reject(connectionError(origin, e))), origin);
    matchCaPin(insecure.caBundle, pins);
    bundle = insecure.caBundle;
  } else bundle = given!;

  // The verified read: the server must hold a serving certificate from the CA now trusted, for the name in --server.
  let verified: ClusterInfoContent;
  try {
    verified = readClusterInfo(await fetchClusterInfo(server, bundle, o), origin);
  } catch (e) {
    if (isUntrustedServerError(e)) {
      const err = e as NodeJS.ErrnoException;
      throw new TrustplaneError(
        'Unauthorized',
        `the server at ${origin} presents a TLS certificate that the cluster CA (${pinsOf(parseCertificates(bundle)).join(', ')}) did not issue for it (${err.code}: ${err.message}): it is not this cluster's API server (another cluster's?), or something on the way intercepts the connection; nothing was sent to it`,
        'check --server: it must be the API server of the cluster whose CA hash you gave (`trustplane clusters describe CLUSTER` shows its endpoint and caCertHash)',
      );
    }
    throw connectionError(origin, e);
  }
  if (given) matchCaPin(verified.caBundle, pinsOf(parseCertificates(given)));
  if (pins.length) matchCaPin(verified.caBundle, pins);
  return { server: origin, caBundle: verified.caBundle, ...(verified.tunnelServer ? { tunnelServer: verified.tunnelServer } : {}), caCertHashes: pinsOf(parseCertificates(verified.caBundle)) };
}
