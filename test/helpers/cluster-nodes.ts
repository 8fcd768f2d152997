// A control plane with real node agents for end-to-end tests: start it, join agents (`trustplane node join` children),
// act as the cluster's admin, reach nodes through the API server's node proxy, and clean up everything started.
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { adminKubeconfigEntry } from '../../src/cli/clusters.js';
import type { BootstrapTokenResponse, FleetCluster } from '../../src/fleet/api.js';
import type { KubeconfigEntry } from '../../src/fleet/kubeconfig.js';
import { ApiClient } from '../../src/node/api-client.js';
import { killChild, tpSpawn } from './cli.js';
import { startControlPlane, type ControlPlane } from './control-plane.js';
import { tempDir } from './tmp.js';

export class ClusterWithNodes {
  readonly tmp;
  readonly dataDir: string;
  private plane: ControlPlane | undefined;
  readonly agents = new Map<string, { child: ChildProcess; output(): string }>();
  private readonly clients: ApiClient[] = [];

  constructor(prefix: string) {
    this.tmp = tempDir(prefix);
    this.dataDir = join(this.tmp.path, 'data');
  }

  get cp(): ControlPlane {
    if (!this.plane) throw new Error('start() first');
    return this.plane;
  }

  async start(o: { hostArgs?: string[] } = {}): Promise<ControlPlane> {
    this.plane = await startControlPlane(this.dataDir, o);
    return this.plane;
  }

  /** Joins `name` with a single-use token bound to it (or the token given); its data dir is <tmp>/<dir ?? name>. */
  async join(cluster: string, name: string, o: { token?: BootstrapTokenResponse; dir?: string; args?: string[] } = {}) {
    const t = o.token ?? (await this.cp.fleet().bootstrapToken(cluster, 'default-pool', { nodeName: name, ttlSeconds: 600 }));
    const dir = join(this.tmp.path, o.dir ?? name);
    const a = tpSpawn(['node', 'join', '--server', t.server, '--ca-cert-hash', t.caCertHash, '--name', name, '--node-data-dir', dir, ...(o.args ?? [])], { TRUSTPLANE_BOOTSTRAP_TOKEN: t.token });
    this.agents.set(o.dir ?? name, a);
    return a;
  }

  /** A fresh admin credential of the cluster, and an API client using it (closed by cleanup). */
  async admin(cluster: string): Promise<{ client: ApiClient; entry: KubeconfigEntry }> {
    const entry = await adminKubeconfigEntry(this.cp.fleet(), cluster);
    return { client: this.client(entry.server, entry.clientCert, entry.clientKey, entry.caBundle), entry };
  }

  client(server: string, cert: string, key: string, ca: string): ApiClient {
    const c = new ApiClient(server, { cert, key, ca });
    this.clients.push(c);
    return c;
  }

  async cleanup(): Promise<void> {
    for (const c of this.clients) c.close();
    for (const a of this.agents.values()) await killChild(a.child, 'SIGTERM').catch(() => killChild(a.child));
    await this.plane?.stop();
    this.tmp.remove();
  }
}

/** GET /api/v1/nodes/NODE/proxy/healthz through the API server and the node's tunnel: the body, or "error: ..." */
export function proxiedHealthz(api: ApiClient, node: string): Promise<string> {
  return api
    .stream(`/api/v1/nodes/${node}/proxy/healthz`)
    .then(
      (r) =>
        new Promise<string>((resolve, reject) => {
          let body = '';
          r.on('data', (c) => (body += c));
          r.on('end', () => resolve(body));
          r.on('error', reject);
        }),
    )
    .catch((e: Error) => `error: ${e.message}`);
}

const LEASES = '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases';

/**
 * A steady stream of Lease creates through the API server (each one a store write), every 20 ms, counted when
 * acknowledged. `stop()` ends it; `lost()` names the acknowledged ones the API server no longer has.
 */
export function leaseWriter(api: ApiClient): { acked: string[]; failed: string[]; stop(): Promise<void>; lost(): Promise<string[]> } {
  const acked: string[] = [];
  const failed: string[] = [];
  let writing = true;
  const done = (async () => {
    for (let i = 0; writing; i++) {
      const name = `w-${i}`;
      try {
        await api.post(LEASES, { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace: 'kube-node-lease' }, spec: { holderIdentity: name } });
        acked.push(name);
      } catch (e) {
        failed.push(`${name}: ${(e as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    acked,
    failed,
    stop() {
      writing = false;
      return done;
    },
    async lost() {
      const list = await api.get<{ items: Array<{ metadata: { name: string } }> }>(LEASES);
      const stored = new Set(list.items.map((l) => l.metadata.name));
      return acked.filter((n) => !stored.has(n));
    },
  };
}

/** An authority's generations as "state" or "state (no key)", comma-separated, from `clusters describe -o json`. */
export function generationStates(c: FleetCluster, kind: string): string {
  return c.authorities.find((a) => a.kind === kind)!.generations.map((g) => `${g.state}${g.hasKey ? '' : ' (no key)'}`).join();
}
