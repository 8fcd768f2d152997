// The fleet: every cluster this host runs, their lifecycle (create, resume, delete), credentials and node pools.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import type { CaClient } from '../ca/client.js';
import type { ClusterView } from '../ca/service.js';
import { clusterPaths, hostPaths } from '../util/datadir.js';
import { SIGNER_APISERVER_CLIENT } from '../pki/signer-names.js';
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
  type EnrollRequest,
  type Enrollment,
  type StoreBackend,
  type CredentialLifetime,
  type MaintenanceWindow,
  type UpdateClusterRequest,
} from './api.js';
import { caCertHashOf, startClusterRuntime, type ClusterConfig, type ClusterRuntime, type RuntimeDeps } from './cluster-runtime.js';
import { checkPoolName, createNodePool, createPoolToken, deleteNodePool, enrollNode, listNodePools, listPoolEnrollments, unenrollNode, updateNodePool, type NodePoolServing } from './node-pools.js';
import { AUTO_COMPLETE_GRACE_S, degradation, lifetimesOf, rotateBeforeS } from './lifetime.js';
import { advance, beginRotation, completeRotation, isRunning, type RotationDeps, type RotationRecord } from './rotation.js';
import { authorityTitle, type AuthorityKind } from '../ca/authority.js';
import { listNodeCredentials, liveCredential } from '../controllers/node-credentials.js';
import type { Store } from '../store/client.js';
import type { RevocationResult } from './revocation.js';
import { memberLaggards } from './etcd-members.js';
import { DEFAULT_OBSERVED_WINDOW_MS, stillPresentingOld, withGenerations, type ObservedClient } from './observed-clients.js';
import { summarizeNodeCredentials, type NodeCredentialSummary } from './node-credential-summary.js';

const CLUSTER_NAME = /^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$/;
const MAX_TOKEN_TTL_S = 30 * 24 * 3600;

export type FleetDeps = Omit<RuntimeDeps, 'persist'> & {
  /** How far back a client seen on an old generation counts (observed clients); default DEFAULT_OBSERVED_WINDOW_MS. */
  observedWindowMs?: number;
};

export class Fleet {
  private readonly runtimes = new Map<string, ClusterRuntime>();
  private readonly configs = new Map<string, ClusterConfig>();
  private readonly lock = new Mutex();
  /** One rotation step at a time per cluster, whether asked for or automatic. */
  private readonly rotationLocks = new Map<string, Mutex>();
  private lifetimeTimer: NodeJS.Timeout | undefined;

  constructor(private readonly d: FleetDeps) {}

  private get ca(): CaClient {
    return this.d.fleetCa;
  }

  private get observedWindowMs(): number {
    return this.d.observedWindowMs ?? DEFAULT_OBSERVED_WINDOW_MS;
  }

  /**
   * Clients the cluster's servers saw presenting a generation of `kind` older than `to` in the observed window, and not
   * a newer one since. Read from the servers each time: the record lives where the handshakes happen.
   */
  private async observedOld(rt: ClusterRuntime, kind: AuthorityKind, to: number): Promise<ObservedClient[]> {
    const view = rt.view() ?? (await this.ca.describeCluster(rt.name));
    return stillPresentingOld(withGenerations(await rt.observedClients(), view), { authority: kind, to, nowMs: this.d.clock.now().getTime(), windowMs: this.observedWindowMs });
  }

  /** The observed-client fields of describe and lifetime: during a rotation, who still presents its old generation. */
  private async observedFields(c: ClusterConfig): Promise<{ observedClients: ObservedClient[]; observedWindowSeconds: number }> {
    const r = c.rotation;
    const rt = this.runtimes.get(c.name);
    const observedWindowSeconds = Math.round(this.observedWindowMs / 1000);
    if (!isRunning(r) || r.to === undefined || !rt || rt.status().status === 'PROVISIONING') return { observedClients: [], observedWindowSeconds };
    const observedClients = await this.observedOld(rt, r.authority, r.to).catch((e: Error) => {
      this.d.log.warn({ cluster: c.name, err: e.message }, 'could not read the observed clients');
      return [];
    });
    return { observedClients, observedWindowSeconds };
  }

  private persist = (c: ClusterConfig) => {
    this.configs.set(c.name, c);
    const p = clusterPaths(this.d.dataDir, c.name);
    mkdirSync(p.dir, { recursive: true, mode: 0o700 });
    writeFileAtomic(p.config, JSON.stringify(c, null, 2) + '\n', 0o600);
  };

  private startRuntime(c: ClusterConfig) {
    const onRunning = () => {
      // A rotation a crash interrupted between its steps goes on as soon as the cluster serves again.
      if (isRunning(c.rotation) && c.rotation.phase !== 'moving') this.resumeRotation(c.name);
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
    const maintenanceWindow = req.maintenanceWindow ? checkWindow(req.maintenanceWindow) : undefined;
    await this.lock.run(async () => {
      if (this.configs.has(name)) throw new TrustplaneError('AlreadyExists', `cluster "${name}" already exists`, `see it with \`trustplane clusters describe ${name}\``);
      const c: ClusterConfig = { name, state: 'creating', createdAt: this.d.clock.now().toISOString(), store, apiserverPort: 0, defaultPool, create: { keyAlgorithm: req.keyAlgorithm, lifetimes: req.lifetimes }, ...(maintenanceWindow ? { maintenanceWindow } : {}) };
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
    if (status === 'RUNNING' && view) ({ status, message } = lifetimeStatus(view, c.rotation, this.d.clock.now(), message));
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
      ...(c.rotation ? { rotation: c.rotation } : {}),
      ...(await this.observedFields(c)),
      ...(c.maintenanceWindow ? { maintenanceWindow: c.maintenanceWindow } : {}),
    };
  }

  // ---- credential lifetime and rotation ----

  private rotationLock(name: string): Mutex {
    let m = this.rotationLocks.get(name);
    if (!m) this.rotationLocks.set(name, (m = new Mutex()));
    return m;
  }

  private rotationDeps(c: ClusterConfig, rt: ClusterRuntime): RotationDeps {
    return {
      cluster: c.name,
      ca: this.ca,
      save: (r) => {
        c.rotation = r;
        if (r.phase === 'done' && r.completedAt) c.lastRotations = { ...c.lastRotations, [r.authority]: r.completedAt };
        this.persist(c);
      },
      applyTrust: (kind, view) => rt.applyTrust(kind, view),
      // Nodes for the cluster root CA; for the etcd CAs of a real etcd cluster, its members (the embedded store has none).
      laggards: (kind, to) =>
        kind === 'root' ? laggards(rt.store(), to, this.d.clock.now()) : c.store.type === 'etcd' ? memberLaggards(rt.store(), kind, to) : Promise.resolve([]),
      // The cluster root CA only: its clients are people, nodes and components that can move. The etcd CAs are managed
      // (no one may complete or force them): their old-generation clients are listed, and their completion waits for
      // the members alone.
      observedOld: async (kind, to) => (kind === 'root' ? { clients: await this.observedOld(rt, kind, to), windowMs: this.observedWindowMs } : undefined),
      clock: this.d.clock,
      log: this.d.log,
    };
  }

  private resumeRotation(name: string): void {
    void this.rotationLock(name)
      .run(async () => {
        const c = this.config(name);
        if (!isRunning(c.rotation) || c.rotation.phase === 'moving') return;
        await advance(this.rotationDeps(c, this.running(name)), c.rotation);
      })
      .catch((e: Error) => this.d.log.error({ cluster: name, err: e.message }, 'resuming the credential rotation failed; the lifetime controller retries'));
  }

  /** `clusters update`: start or complete a credential rotation, set or clear the maintenance window. */
  async update(name: string, req: UpdateClusterRequest): Promise<FleetCluster> {
    const c = this.config(name);
    const kind: AuthorityKind = req.authority ?? 'root';
    if (kind !== 'root') {
      throw new TrustplaneError(
        'Forbidden',
        `the ${authorityTitle(kind)} of cluster "${name}" is managed: trustplane rotates it automatically before it expires, with no user command`,
        `see when with \`trustplane clusters check-credential-lifetime ${name}\``,
      );
    }
    if (req.startCredentialRotation && req.completeCredentialRotation) throw invalid('start and complete a rotation in two steps', 'run --start-credential-rotation, let the nodes move, then --complete-credential-rotation');
    if (req.maintenanceWindow !== undefined) {
      if (req.maintenanceWindow === null) delete c.maintenanceWindow;
      else c.maintenanceWindow = checkWindow(req.maintenanceWindow);
      this.persist(c);
    }
    if (req.startCredentialRotation || req.completeCredentialRotation) {
      if (c.state !== 'ready') throw new TrustplaneError('Conflict', `cluster "${name}" is ${c.state === 'creating' ? 'still being created' : 'being deleted'}`);
      const rt = this.running(name);
      await this.rotationLock(name).run(async () => {
        const d = this.rotationDeps(c, rt);
        if (req.startCredentialRotation) {
          const r = await beginRotation(d, c.rotation ? [c.rotation] : [], 'root', 'manual');
          await advance(d, r);
        } else {
          if (!isRunning(c.rotation))
            throw new TrustplaneError('Conflict', `no credential rotation is in progress for cluster "${name}"`, `start one with \`trustplane clusters update ${name} --start-credential-rotation\``);
          await advance(d, c.rotation);
          await completeRotation(d, c.rotation, !!req.force);
        }
      });
    }
    return this.describe(name);
  }

  /** `nodes revoke`: the node's certificates are refused from now on; it joins again only with a new bootstrap token. */
  revokeNode(cluster: string, node: string): Promise<RevocationResult> {
    return this.running(cluster).revokeNode(node);
  }

  /** How many nodes hold, as their newest live client certificate, one from each cluster root CA generation. */
  async nodesByGeneration(name: string): Promise<Map<number, number>> {
    return (await this.nodeCredentialSummary(name)).byGeneration;
  }

  /** For metrics: nodes per root CA generation and how many are near the end of their certificate's life, from one store list. */
  async nodeCredentialSummary(name: string): Promise<NodeCredentialSummary> {
    return summarizeNodeCredentials((await listNodeCredentials(this.running(name).store())).map((c) => c.record), this.d.clock.now());
  }

  async lifetime(name: string): Promise<CredentialLifetime> {
    const c = this.config(name);
    const described = await this.describe(name);
    const now = this.d.clock.now();
    const rt = this.runtimes.get(name);
    const r = c.rotation;
    const waitingFor = isRunning(r) && r.phase === 'moving' && rt ? await this.rotationDeps(c, rt).laggards(r.authority, r.to!).catch(() => undefined) : undefined;
    return {
      cluster: name,
      status: described.status,
      statusMessage: described.statusMessage,
      now: now.toISOString(),
      authorities: lifetimesOf(described, now, c.rotation ? [c.rotation] : []),
      ...(c.rotation ? { rotation: c.rotation } : {}),
      ...(waitingFor ? { waitingFor } : {}),
      observedClients: described.observedClients ?? [],
      observedWindowSeconds: described.observedWindowSeconds ?? Math.round(this.observedWindowMs / 1000),
      ...(c.maintenanceWindow ? { maintenanceWindow: c.maintenanceWindow } : {}),
    };
  }

  /**
   * The lifetime controller: every interval, per serving cluster, resume an interrupted rotation, start one when the
   * cluster root CA has 30 days or less left (whatever the maintenance window), and complete an automatic one once
   * every node has moved, or after the grace period, inside the maintenance window when there is one.
   */
  startLifetimeController(intervalMs: number): void {
    const tick = async () => {
      for (const name of [...this.configs.keys()]) {
        await this.lifetimeStep(name).catch((e: Error) => this.d.log.error({ cluster: name, err: e.message }, 'lifetime controller step failed; retrying next time'));
      }
      if (this.lifetimeTimer !== undefined) this.lifetimeTimer = setTimeout(() => void tick(), intervalMs);
    };
    this.lifetimeTimer = setTimeout(() => void tick(), 0);
  }

  private readonly lastStatus = new Map<string, string>();
  private readonly lastLaggardWarning = new Map<string, number>();

  private async lifetimeStep(name: string): Promise<void> {
    const c = this.configs.get(name);
    const rt = this.runtimes.get(name);
    if (!c || c.state !== 'ready' || !rt || rt.status().status !== 'RUNNING') return;
    await this.rotationLock(name).run(async () => {
      const d = this.rotationDeps(c, rt);
      const now = this.d.clock.now();
      const view = await this.ca.describeCluster(name);
      // One log line (an event) for each change of the cluster's status.
      const { status, message } = lifetimeStatus(view, c.rotation, now, rt.status().message);
      if (this.lastStatus.get(name) !== status) {
        this.d.log[status === 'DEGRADED' ? 'warn' : 'info']({ cluster: name, status, was: this.lastStatus.get(name) ?? null, message }, `cluster ${name} is ${status}`);
        this.lastStatus.set(name, status);
      }
      if (isRunning(c.rotation)) {
        const r = c.rotation;
        if (r.phase !== 'moving') return advance(d, r);
        if (r.trigger !== 'automatic' || (c.maintenanceWindow && !inWindow(c.maintenanceWindow, now))) return;
        const graceOver = now.getTime() >= Date.parse(r.startedAt) + AUTO_COMPLETE_GRACE_S * 1000;
        const late = await d.laggards(r.authority, r.to!);
        // An automatic root rotation also waits for clients seen on the old generation, until the grace period ends.
        const seen = (await d.observedOld?.(r.authority, r.to!))?.clients ?? [];
        if (late.length === 0 && seen.length === 0) return completeRotation(d, r, false);
        if (r.authority === 'root') {
          if (graceOver) await completeRotation(d, r, true);
          return;
        }
        // An etcd member still on the old generation would be cut off from the control plane: never forced; said once an hour.
        if (graceOver && now.getTime() - (this.lastLaggardWarning.get(name) ?? 0) >= 3_600_000) {
          this.lastLaggardWarning.set(name, now.getTime());
          this.d.log.warn({ cluster: name, authority: r.authority, members: late }, `the ${authorityTitle(r.authority)} rotation waits for etcd members that have not moved; run them with \`trustplane store member\``);
        }
        return;
      }
      for (const l of lifetimesOf(view, now)) {
        if (l.secondsLeft === undefined || l.secondsLeft > rotateBeforeS(l.kind)) continue;
        // An authority whose whole lifetime is under its threshold would rotate on every look: once a day is enough.
        const lastDone = c.lastRotations?.[l.kind];
        if (lastDone && now.getTime() - Date.parse(lastDone) < 86_400_000) continue;
        this.d.log.warn({ cluster: name, authority: l.kind, notAfter: l.notAfter }, `the ${l.title} has ${Math.floor(l.secondsLeft / 86400)} days left: starting an automatic rotation`);
        const r = await beginRotation(d, [], l.kind, 'automatic');
        await advance(d, r);
        return; // one rotation at a time
      }
    });
  }

  async delete(name: string): Promise<void> {
    const c = await this.lock.run(async () => {
      const c = this.config(name);
      if (c.state === 'deleting') return c;
      if (isRunning(c.rotation))
        throw new TrustplaneError(
          'Conflict',
          `cluster "${name}" cannot be deleted while a credential rotation is in progress (phase ${c.rotation.phase})`,
          c.rotation.phase === 'moving' ? `complete it first: \`trustplane clusters update ${name} --complete-credential-rotation\`` : 'wait for it to finish',
        );
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
    const issued = await this.ca.sign(name, { signer: SIGNER_APISERVER_CLIENT, csr: req.csr, admin: true, onBehalfOf: `get-credentials:${username}` });
    return { cluster: name, server: rt.endpoint(), caBundle: rt.caBundle(), certificate: issued.certificate + issued.chain.join(''), notAfter: issued.notAfter, username };
  }

  listPools(cluster: string): Promise<NodePool[]> {
    return listNodePools(this.running(cluster).store());
  }

  createPool(cluster: string, pool: string, serving: NodePoolServing = {}, shielded?: { pcrs: number[]; ekCaBundle?: string }): Promise<NodePool> {
    return createNodePool(this.running(cluster).store(), cluster, pool, this.d.clock, false, serving, shielded);
  }

  enrollNode(cluster: string, pool: string, req: EnrollRequest): Promise<Enrollment> {
    return enrollNode(this.running(cluster).store(), cluster, pool, req, this.d.clock);
  }

  listEnrollments(cluster: string, pool: string): Promise<Enrollment[]> {
    return listPoolEnrollments(this.running(cluster).store(), cluster, pool);
  }

  unenrollNode(cluster: string, pool: string, node: string): Promise<{ deleted: boolean }> {
    return unenrollNode(this.running(cluster).store(), cluster, pool, node);
  }

  updatePool(cluster: string, pool: string, serving: NodePoolServing): Promise<NodePool> {
    return updateNodePool(this.running(cluster).store(), cluster, pool, serving);
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
    if (this.lifetimeTimer) clearTimeout(this.lifetimeTimer);
    this.lifetimeTimer = undefined;
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

/** RUNNING, or DEGRADED when the cluster root CA is about to expire, or RECONCILING while a rotation runs. */
function lifetimeStatus(view: ClusterView, rotation: RotationRecord | undefined, now: Date, running: string): { status: FleetCluster['status']; message: string } {
  const degraded = degradation(view, now);
  if (degraded) return { status: 'DEGRADED', message: degraded };
  if (isRunning(rotation)) {
    const what = `rotating the ${authorityTitle(rotation.authority)} (${rotation.trigger}, generation ${rotation.from} to ${rotation.to ?? rotation.from + 1}): phase ${rotation.phase}`;
    const next =
      rotation.phase === 'moving'
        ? rotation.authority !== 'root'
          ? '; it completes by itself once every etcd member serves from and trusts the new generation'
          : rotation.trigger === 'manual'
            ? '; nodes are moving to the new generation; complete with `trustplane clusters update ' + view.name + ' --complete-credential-rotation`'
            : '; nodes are moving to the new generation; it completes by itself once they have'
        : '';
    return { status: 'RECONCILING', message: what + next };
  }
  return { status: 'RUNNING', message: running };
}

/** Nodes whose newest live client credential was issued by a root CA generation older than `to`. */
/** Each node's cluster root CA generation: that of its newest live client credential (nodes with none are left out). */
async function liveGenerations(store: Store, now: Date): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const { record } of await listNodeCredentials(store)) {
    const live = liveCredential(record, now);
    if (live) out.set(record.node, live.generation);
  }
  return out;
}

/** Nodes whose newest live client credential was issued by a root CA generation older than `to`. */
async function laggards(store: Store, to: number, now: Date): Promise<string[]> {
  return [...(await liveGenerations(store, now))].filter(([, gen]) => gen < to).map(([node]) => node).sort();
}

function checkWindow(w: MaintenanceWindow): MaintenanceWindow {
  if (typeof w?.start !== 'string' || !/^([01]\d|2[0-3]):[0-5]\d$/.test(w.start)) throw invalid(`maintenance window start "${w?.start}" is not HH:MM (UTC)`);
  if (!Number.isInteger(w.hours) || w.hours < 1 || w.hours > 24) throw invalid(`maintenance window length ${w.hours} must be 1 to 24 hours`);
  return { start: w.start, hours: w.hours };
}

/** Whether `now` falls in the daily window. */
export function inWindow(w: MaintenanceWindow, now: Date): boolean {
  const [h, m] = w.start.split(':').map(Number);
  const minuteOfDay = now.getUTCHours() * 60 + now.getUTCMinutes();
  const from = h * 60 + m;
  const offset = (minuteOfDay - from + 1440) % 1440;
  return offset < w.hours * 60;
}

async function waitRunning(rt: ClusterRuntime, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (rt.status().status === 'RUNNING') return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new TrustplaneError('Timeout', `cluster "${rt.name}" did not start within ${timeoutMs / 1000}s: ${rt.status().message}`);
}

