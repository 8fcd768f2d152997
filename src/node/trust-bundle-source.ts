// Where a node reads the cluster's trust bundle once it has joined: the ClusterTrustBundle the control plane publishes for
// the signer of the API server's serving certificate, or cluster-info from a host that publishes none (an older one).
//
// The agent verifies, with this bundle, the API server's and the tunnel server's serving certificates (signer
// trustplane.io/kube-apiserver-serving) and, on its endpoint, the API server's client certificate: all issued by the
// cluster root CA, whose bundle every root signer's ClusterTrustBundle holds. The serving signer's is the one that names
// what the agent checks. Both sources are read over the node's connection, verified by the bundle it trusts now.
import { CLUSTER_INFO_PATH, trustBundleDigest } from '../apiserver/api/cluster-info.js';
import { CLUSTER_TRUST_BUNDLES_PATH, type ClusterTrustBundle } from '../apiserver/registry/cluster-trust-bundle.js';
import { SIGNER_APISERVER_SERVING } from '../pki/index.js';
import { isApiError, type ApiClient } from './api-client.js';
import { readClusterInfo } from './discovery.js';

/** The signer whose ClusterTrustBundle a node trusts the control plane with. */
export const NODE_TRUST_SIGNER = SIGNER_APISERVER_SERVING;

export interface ReadTrustBundle {
  pem: string;
  /** For logs: the ClusterTrustBundle's name, or "cluster-info". */
  source: string;
}

const digestOf = (pem: string) => {
  try {
    return trustBundleDigest(pem);
  } catch {
    return undefined;
  }
};

/**
 * The bundle whose digest is `digest` (what an answer's trust header names), else the signer's one bundle when there is
 * exactly one; cluster-info when the host serves no ClusterTrustBundles (404), does not take the node's certificate
 * (401, 403), or has none that fits (a publish that has not happened yet, two objects while one replaces the other).
 */
export async function readTrustBundle(api: ApiClient, server: string, digest?: string): Promise<ReadTrustBundle> {
  try {
    const list = await api.get<{ items?: ClusterTrustBundle[] }>(`${CLUSTER_TRUST_BUNDLES_PATH}?fieldSelector=${encodeURIComponent(`spec.signerName=${NODE_TRUST_SIGNER}`)}`);
    const bundles = (list.items ?? []).filter((b) => b?.spec?.signerName === NODE_TRUST_SIGNER && typeof b.spec.trustBundle === 'string' && digestOf(b.spec.trustBundle));
    const pick = digest !== undefined ? bundles.find((b) => digestOf(b.spec.trustBundle) === digest) : bundles.length === 1 ? bundles[0] : undefined;
    if (pick) return { pem: pick.spec.trustBundle, source: `ClusterTrustBundle ${pick.metadata.name}` };
  } catch (e) {
    // 404: a host that serves none. 401/403: a client certificate the server no longer takes (revoked, or of a retired
    // generation): the anonymous cluster-info still tells such a node what to trust before it joins again.
    if (![401, 403, 404].some((code) => isApiError(e, code))) throw e;
  }
  return { pem: readClusterInfo(await api.get(CLUSTER_INFO_PATH), server).caBundle, source: 'cluster-info' };
}
