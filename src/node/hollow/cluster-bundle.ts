// The cluster root CA bundle as every hollow node of one process trusts it: the published ClusterTrustBundle (cluster-info
// on older hosts) is read once per change of the bundle, not once per node, as the cluster itself is discovered once per process.
import { trustBundleDigest } from '../../apiserver/api/cluster-info.js';
import type { ApiClient } from '../api-client.js';
import { readTrustBundle } from '../trust-bundle-source.js';

export interface TrustBundle {
  /** PEM, every generation the cluster trusts. */
  pem: string;
  /** trustBundleDigest(pem), as the trust header names it. */
  digest: string;
}

export function trustBundle(pem: string): TrustBundle {
  return { pem, digest: trustBundleDigest(pem) };
}

export class ClusterBundle {
  private known: TrustBundle;
  private reading: Promise<TrustBundle> | undefined;
  /** Times the bundle was read. */
  reads = 0;

  constructor(
    pem: string,
    private readonly server: string,
  ) {
    this.known = trustBundle(pem);
  }

  /** The newest bundle read. */
  get current(): TrustBundle {
    return this.known;
  }

  /**
   * The bundle an answer's trust header names by `digest`: the one known when it is that one, else the one published
   * (readTrustBundle) read over `api` (a node's own verified connection), once for all the nodes that ask meanwhile.
   */
  async lookup(digest: string, api: ApiClient): Promise<TrustBundle> {
    if (this.known.digest === digest) return this.known;
    this.reading ??= (async () => {
      try {
        this.reads++;
        const read = trustBundle((await readTrustBundle(api, this.server, digest)).pem);
        if (read.digest !== this.known.digest) this.known = read;
        return read;
      } finally {
        this.reading = undefined;
      }
    })();
    return this.reading;
  }
}
