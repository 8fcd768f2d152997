// The fleet: every cluster this host runs, their lifecycle (create, resume, delete), credentials and node pools.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import type { CaClient } from '../ca/client.js';
import type { ClusterView } from '../ca/service.js';
import { clusterPaths, hostPaths } from '../util/datadir.js';
import { TrustplaneError, invalid } from '../util/errors.js';
import { writeFileAtomic } from '../util/files.js';
import { Mutex } from '../util/mutex.js';
import {
  DEFAULT_POOL,
  DEFAULT_TOKEN_TTL_S,
  type BootstrapTokenRequest,
  type BootstrapTokenResponse,
  type CreateClusterRequest,
  type Credentials,
  type CredentialsRequest,
  type FleetCluster,
  type NodePool,
  type StoreBackend,
} from './api.js';
import { caCertHashOf, startClusterRuntime, type ClusterConfig, type ClusterRuntime, type RuntimeDeps } from './cluster-runtime.js';
import { checkPoolName, createNodePool, createPoolToken, deleteNodePool, listNodePools } from './node-pools.js';

const CLUSTER_NAME = /^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$/;
const MAX_TOKEN_TTL_S = 30 * 24 * 3600;

export type FleetDeps = Omit<RuntimeDeps, 'persist'>;

export class Fleet {
  private readonly runtimes = new Map<string, ClusterRuntime>();
  private readonly configs = new Map<string, ClusterConfig>();
  private readonly lock = new Mutex();

  constructor(private readonly d: FleetDeps) {}

  private get ca(): CaClient {
    return this.d.fleetCa;
  }

  private persist = (c: ClusterConfig) => {
    this.configs.set(c.name, c);
    const p = clusterPaths(this.d.dataDir, c.name);
    mkdirSync(p.dir, { recursive: true, mode: 0o700 });
    writeFileAtomic(p.config, JSON.stringify(c, null, 2) + '\n', 0o600);
  };

  private startRuntime(c: ClusterConfig) {
    const onRunning = () => {
      if (c.state !== 'creating') return;
      this.finishCreate(c).catch((e: Error) => this.d.log.error({ cluster: c.name, err: e.message }, 'could not finish creating the cluster'));
    };
    this.runtimes.set(c.name, startClusterRuntime(c, { ...this.d, persist: this.persist, onRunning }));
  }

  /** Resumes every cluster recorded in the data dir, finishing creations and deletions a crash interrupted. */
  async resume(): Promise<void> {
    const dir = hostPaths(this.d.dataDir).clustersDir;
    if (!existsSync(dir)) return;
    for (const name of readdirSync(dir).sort()) {
      const p = clusterPaths(this.d.dataDir, name);
      if (!existsSync(p.config)) continue;
      const c = JSON.parse(readFileSync(p.config, 'utf8')) as ClusterConfig;
      this.configs.set(c.name, c);
      if (c.state === 'deleting') await this.finishDelete(c);
      else if (c.state === 'creating') await this.finishCreate(c).catch((e: Error) => this.d.log.error({ cluster: c.name, err: e.message }, 'could not finish creating the cluster'));
      else this.startRuntime(c);
    }
  }

  async create(req: CreateClusterRequest): Promise<FleetCluster> {
    const name = req.name;
    if (typeof name !== 'string' || !CLUSTER_NAME.test(name))
      throw invalid(`cluster name "${name}" is not valid`, 'use 1-40 lower-case letters, digits and dashes, starting with a letter');
    const store = checkStoreBackend(req.store ?? { type: 'embedded' });
    const defaultPool = checkPoolName(req.defaultPool ?? DEFAULT_POOL);
    await this.lock.run(async () => {
      if (this.configs.has(name)) throw new TrustplaneError('AlreadyExists', `cluster "${name}" already exists`, `see it with \`trustplane clusters describe ${name}\``);
      const c: ClusterConfig = { name, state: 'creating', createdAt: this.d.clock.now().toISOString(), store, apiserverPort: 0, defaultPool, create: { keyAlgorithm: req.keyAlgorithm, lifetimes: req.lifetimes } };
      this.persist(c);
    });
    await this.finishCreate(this.configs.get(name)!);
    return this.describe(name);
  }

  /** Idempotent: authorities (the CA resumes its own half-done creation), runtime, the default node pool. */
  private async finishCreate(c: ClusterConfig): Promise<void> {
    try {
      await this.ca.createCluster({ name: c.name, keyAlgorithm: c.create?.keyAlgorithm as never, lifetimes: c.create?.lifetimes as never });
    } catch (e) {
      if (!(e instanceof TrustplaneError && e.reason === 'AlreadyExists')) {
        // Nothing was made for a refused request: forget the cluster so the name can be used again.
        if (e instanceof TrustplaneError && (e.reason === 'Invalid' || e.reason === 'Forbidden')) {
          this.configs.delete(c.name);
          rmSync(clusterPaths(this.d.dataDir, c.name).dir, { recursive: true, force: true });
        }
        throw e;
      }
    }
    if (!this.runtimes.has(c.name)) this.startRuntime(c);
    const rt = this.runtimes.get(c.name)!;
    // A cluster on an etcd cluster that is not up yet stays PROVISIONING; its pool is made when the store answers.
    if (c.store.type === 'embedded') await waitRunning(rt, 60_000);
    if (rt.status().status === 'RUNNING') {
      await createNodePool(rt.store(), c.name, c.defaultPool, this.d.clock, true);
      c.state = 'ready';
      delete c.create;
      this.persist(c);
    }
  }

  list(): Promise<FleetCluster[]> {
    return Promise.all([...this.configs.keys()].sort().map((n) => this.describe(n)));
  }

  private config(name: string): ClusterConfig {
    const c = this.configs.get(name);
    if (!c) throw new TrustplaneError('NotFound', `cluster "${name}" not found`, 'list clusters with `trustplane clusters list`');
    return c;
  }

  private running(name: string): ClusterRuntime {
    this.config(name);
    const rt = this.runtimes.get(name);
    const s = rt?.status();
    if (!rt || (s!.status !== 'RUNNING' && s!.status !== 'DEGRADED' && s!.status !== 'RECONCILING'))
      throw new TrustplaneError('Unavailable', `cluster "${name}" is not serving: ${s?.message ?? 'not started'}`, `see \`trustplane clusters describe ${name}\``);
    return rt;
  }

  async describe(name: string): Promise<FleetCluster> {
    const c = this.config(name);
    let view: ClusterView | undefined;
    try {
      view = await this.ca.describeCluster(name);
    } catch (e) {
      if (!(e instanceof TrustplaneError && e.reason === 'NotFound')) throw e;
    }
    const rt = this.runtimes.get(name);
    let { status, message } = rt?.status() ?? { status: 'PROVISIONING' as const, message: 'not started' };
    if (c.state === 'creating' && status === 'RUNNING') status = 'PROVISIONING';
    if (c.state === 'deleting') ({ status, message } = { status: 'STOPPING', message: 'being deleted' });
    let nodePools: NodePool[] = [];
    if (rt && status !== 'PROVISIONING' && status !== 'STOPPING') nodePools = await listNodePools(rt.store()).catch(() => []);
    return {
      name,
      uid: view?.uid ?? '',
      createdAt: c.createdAt,
      status,
      statusMessage: message,
      endpoint: rt?.endpoint() ?? '',
      store: { type: c.store.type, endpoints: rt?.storeEndpoints() ?? (c.store.type === 'etcd' ? c.store.endpoints : []) },
      caCertHash: view ? caCertHashOf(view) : '',
      authorities: view?.authorities ?? [],
      nodePools,
    };
  }

  async delete(name: string): Promise<void> {
    const c = await this.lock.run(async () => {
      const c = this.config(name);
      if (c.state === 'deleting') return c;
      c.state = 'deleting';
      this.persist(c);
      return c;
    });
    await this.finishDelete(c);
  }

  /** Idempotent: stop the runtime, destroy the authorities' keys (the CA service), remove the cluster's files. */
  private async finishDelete(c: ClusterConfig): Promise<void> {
    const rt = this.runtimes.get(c.name);
    this.runtimes.delete(c.name);
    await rt?.stop();
    try {
      await this.ca.deleteCluster(c.name);
    } catch (e) {
      if (!(e instanceof TrustplaneError && e.reason === 'NotFound')) throw e;
    }
    rmSync(clusterPaths(this.d.dataDir, c.name).dir, { recursive: true, force: true });
    this.configs.delete(c.name);
  }

  /** An admin client certificate (system:masters) for a key the caller made; the key never comes here. */
  async credentials(name: string, req: CredentialsRequest): Promise<Credentials> {
    const rt = this.running(name);
    if (typeof req.csr !== 'string') throw invalid('needs "csr" (PEM)');
    const username = req.username ?? 'admin';
    const issued = await this.ca.sign(name, { signer: 'kubernetes.io/kube-apiserver-client', csr: req.csr, admin: true, onBehalfOf: `get-credentials:${username}` });
    return { cluster: name, server: rt.endpoint(), caBundle: rt.caBundle(), certificate: issued.certificate + issued.chain.join(''), notAfter: issued.notAfter, username };
  }

  listPools(cluster: string): Promise<NodePool[]> {
    return listNodePools(this.running(cluster).store());
  }

  createPool(cluster: string, pool: string): Promise<NodePool> {
    return createNodePool(this.running(cluster).store(), cluster, pool, this.d.clock);
  }

  deletePool(cluster: string, pool: string): Promise<{ tokensDeleted: number }> {
    return deleteNodePool(this.running(cluster).store(), cluster, pool);
  }

  async bootstrapToken(cluster: string, pool: string, req: BootstrapTokenRequest): Promise<BootstrapTokenResponse> {
    const rt = this.running(cluster);
    const ttlSeconds = req.ttlSeconds ?? DEFAULT_TOKEN_TTL_S;
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 60 || ttlSeconds > MAX_TOKEN_TTL_S)
      throw invalid(`bootstrap token TTL ${ttlSeconds}s is out of range`, `use between 1m and ${MAX_TOKEN_TTL_S / 86400}d`);
    const t = await createPoolToken(rt.store(), cluster, pool, { ttlSeconds, nodeName: req.nodeName }, this.d.clock);
    const server = rt.endpoint();
    const hash = rt.caCertHash();
    return {
      cluster,
      pool,
      id: t.id,
      token: t.token,
      expiresAt: t.expiresAt.toISOString(),
      server,
      caCertHash: hash,
      ...(req.nodeName ? { nodeName: req.nodeName } : {}),
      joinCommand: `trustplane node join --server ${server} --token ${t.token} --ca-cert-hash ${hash}${req.nodeName ? ` --name ${req.nodeName}` : ''}`,
    };
  }

  runtime(name: string): ClusterRuntime | undefined {
    return this.runtimes.get(name);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.runtimes.values()].map((r) => r.stop()));
    this.runtimes.clear();
  }
}

function checkStoreBackend(s: StoreBackend): StoreBackend {
  if (s.type === 'embedded') return { type: 'embedded' };
  if (s.type === 'etcd') {
    if (!Array.isArray(s.endpoints) || s.endpoints.length === 0) throw invalid('an etcd store needs at least one endpoint', 'pass --etcd-endpoints https://host:port[,...]');
    for (const e of s.endpoints) {
      let u: URL;
      try {
        u = new URL(e);
      } catch {
        throw invalid(`etcd endpoint "${e}" is not a URL`, 'write endpoints as https://host:port');
      }
      if (u.protocol !== 'https:') throw invalid(`etcd endpoint "${e}" is not https`, 'trustplane talks to etcd only over TLS with client certificates');
    }
    return { type: 'etcd', endpoints: [...s.endpoints] };
  }
  throw invalid(`store type "${(s as { type: string }).type}" is unknown`, 'use embedded or etcd');
}

async function waitRunning(rt: ClusterRuntime, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (rt.status().status === 'RUNNING') return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new TrustplaneError('Timeout', `cluster "${rt.name}" did not start within ${timeoutMs / 1000}s: ${rt.status().message}`);
}

