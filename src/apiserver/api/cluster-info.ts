// kubeadm's discovery document: the anonymous kube-public/cluster-info ConfigMap a joining node reads before it trusts anything.
//
// It holds public facts only (the API server URL, the cluster root CA bundle, the tunnel server URL). A node fetches it
// over an unverified connection and trusts it only after the CA's public key matches the hash it was given out of band.
import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { pemDecodeAll } from '../../pki/pem.js';
import { parseCertificates } from '../../pki/index.js';
import { stringify } from 'yaml';
import { sendJson } from '../http/respond.js';

export const CLUSTER_INFO_NAMESPACE = 'kube-public';
export const CLUSTER_INFO_NAME = 'cluster-info';
export const CLUSTER_INFO_PATH = `/api/v1/namespaces/${CLUSTER_INFO_NAMESPACE}/configmaps/${CLUSTER_INFO_NAME}`;
/** ConfigMap data key of the kubeconfig, as kubeadm's bootstrapapi.KubeConfigKey. */
export const KUBECONFIG_KEY = 'kubeconfig';
/** ConfigMap data key of the reverse tunnel server's URL (empty when the cluster has none). */
export const TUNNEL_SERVER_KEY = 'trustplane.io/tunnel-server';

/**
 * Every API server answer carries the digest of the trust bundle it works with, so that node agents learn of a new
 * cluster root CA generation from the requests they make anyway (Lease renewals), and fetch cluster-info again.
 */
export const TRUST_BUNDLE_HEADER = 'X-Trustplane-Trust-Bundle';

/** sha256 over the DER of each certificate of a PEM bundle, in order, as "sha256:<hex>". */
export function trustBundleDigest(pem: string): string {
  const h = createHash('sha256');
  for (const der of pemDecodeAll(pem, 'CERTIFICATE')) h.update(der);
  return `sha256:${h.digest('hex')}`;
}

/**
 * The header's value: the bundle digest, and which CA signs now (the authority key id of the API server's own serving
 * certificate, which is re-issued by the active generation when a rotation activates it): "sha256:<hex>;signer=<hex>".
 */
export function trustHeaderValue(bundlePem: string, servingCertPem: string): string {
  const aki = parseCertificates(servingCertPem)[0]?.authorityKeyId?.toString('hex') ?? '';
  return `${trustBundleDigest(bundlePem)};signer=${aki}`;
}

export function parseTrustHeader(v: string): { digest: string; signer: string } | undefined {
  const m = /^(sha256:[0-9a-f]{64});signer=([0-9a-f]*)$/.exec(v.trim());
  return m ? { digest: m[1], signer: m[2] } : undefined;
}

export interface ClusterInfo {
  /** PEM: the cluster root CA bundle (every generation nodes must trust). */
  caBundle: string;
  /** The API server URL nodes use. */
  server: string;
  /** The tunnel server URL, https://host:port, if the cluster has one. */
  tunnelServer?: string;
}

/** The ConfigMap as kube-apiserver serves it for kubeadm clusters (without the JWS signatures: the CA hash is the check). */
export function clusterInfoConfigMap(info: ClusterInfo) {
  const kubeconfig = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: '', cluster: { server: info.server, 'certificate-authority-data': Buffer.from(info.caBundle, 'utf8').toString('base64') } }],
    contexts: [],
    'current-context': '',
    preferences: {},
    users: [],
  };
  return {
    kind: 'ConfigMap',
    apiVersion: 'v1',
    metadata: { name: CLUSTER_INFO_NAME, namespace: CLUSTER_INFO_NAMESPACE },
    data: { [KUBECONFIG_KEY]: stringify(kubeconfig), [TUNNEL_SERVER_KEY]: info.tunnelServer ?? '' },
  };
}

/** Answers a GET of cluster-info (true) without credentials: everything in it is public. Writes take the usual path. */
export function serveClusterInfo(res: ServerResponse, method: string, path: string, info: (() => ClusterInfo) | undefined): boolean {
  if (!info || method !== 'GET' || path !== CLUSTER_INFO_PATH) return false;
  sendJson(res, 200, clusterInfoConfigMap(info()));
  return true;
}
