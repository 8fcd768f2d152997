// One cluster at run time on the host: its state store (embedded, or a client of its etcd cluster), tunnel server, API server and controllers.
import { createRegistries, startApiServer, type Registries, type RunningApiServer } from '../apiserver/index.js';
import { CaClient } from '../ca/client.js';
import { localCredential } from '../ca/credential.js';
import type { AuthorityKind } from '../ca/authority.js';
import { PROFILES } from '../ca/profiles.js';
import type { ClusterView } from '../ca/service.js';
import { SignBatcher } from '../ca/sign-batcher.js';
import { startControllers } from '../controllers/index.js';
import { SIGNER_APISERVER_SERVING, SIGNER_CONTROL_PLANE_COMPONENT, SIGNER_ETCD_CLIENT, buildCsr, generateKeyPair, parseCertificate, pemDecode, pemEncode, spkiPin } from '../pki/index.js';
import { openStore, type Store } from '../store/client.js';
import { runStoreProcess, type RunningStoreProcess } from '../store/process.js';
import type { MinVersion } from '../tls/policy.js';
import type { Clock } from '../util/clock.js';
import { NodeHttpsAgent, startTunnelServer, type TunnelServer } from '../tunnel/index.js';
import type { Logger } from '../util/log.js';
import { TrustplaneError } from '../util/errors.js';
import type { ClusterStatus, MaintenanceWindow, StoreBackend } from './api.js';
import type { RotationRecord } from './rotation.js';
import { generationOf } from './generations.js';
import { stablePort } from '../util/ports.js';
import { ObservedClients, type ClientSighting } from '../tls/observed-clients.js';
import { followRevocations, revokeNode, type RevocationList, type RevocationResult } from './revocation.js';

/** What the host keeps of a cluster in <data-dir>/clusters/<name>/cluster.json. */
export interface ClusterConfig {
  name: string;
  /** 'creating' and 'deleting' are recorded before their side effects, so a restarted host finishes them. */
  state: 'creating' | 'ready' | 'deleting';
  createdAt: string;
  store: StoreBackend;
  /** The API server's port, kept across restarts so kubeconfigs stay valid (0 until first chosen). */
  apiserverPort: number;
  /** The tunnel server's port, kept across restarts so agents reconnect to the same place (0 until first chosen). */
  tunnelPort?: number;
  defaultPool: string;
  create?: { keyAlgorithm?: unknown; lifetimes?: unknown };
  /** The current (or last) credential rotation, recorded before each of its steps. */
  rotation?: RotationRecord;
  /** When the last rotation of each authority completed. */
  lastRotations?: Partial<Record<AuthorityKind, string>>;
  /** Daily window (UTC) for optional automatic work, such as completing an automatic rotation. */
  maintenanceWindow?: MaintenanceWindow;
}

export interface RuntimeDeps {
  dataDir: string;
  host: string;
  /** The CA service, as the fleet (issues serving and store certificates). */
  fleetCa: CaClient;
  caUrl: string;
  serviceCa: string;
  clock: Clock;
  minVersion?: MinVersion;
  log: Logger;
  /** Called when a port is first chosen, so the host can record it. */
  persist(c: ClusterConfig): void;
  /** Called each time the cluster comes up (the host finishes a creation that waited for the store). */
  onRunning?(): void;
  /** Counts the CA service's answers to the signer controller (metrics). */
  countSigning?(cluster: string, signer: string, outcome: 'signed' | 'refused'): void;
}

export interface ClusterRuntime {
  readonly name: string;
  status(): { status: ClusterStatus; message: string };
  /** Empty until the API server serves. */
  endpoint(): string;
  storeEndpoints(): string[];
  /** The store, once reachable. */
  store(): Store;
  caBundle(): string;
  /** The tunnel server (undefined until started). */
  tunnel(): TunnelServer | undefined;
  /** HTTPS to node endpoints through the tunnel, TLS end to end, as the API server's kubelet client. */
  nodeAgent(): NodeHttpsAgent | undefined;
  caCertHash(): string;
  /** The CA's view of the cluster as last read (authorities, generations). */
  view(): ClusterView | undefined;
  /**
   * Makes every component follow the CA's view of an authority (after a rotation step): for the cluster root CA, the
   * API server and tunnel server trust its bundle and refuse retired generations, serving and kubelet-client
   * certificates are re-issued by the active generation. Idempotent.
   */
  applyTrust(kind: AuthorityKind, view: ClusterView): Promise<void>;
  /** Revokes every certificate of the node: refused by the API server and the tunnel server from now on. */
  revokeNode(node: string): Promise<RevocationResult>;
  /** The client certificates the API server, tunnel server and embedded store saw (user, issuing CA key, when, where). */
  observedClients(): Promise<ClientSighting[]>;
  stop(): Promise<void>;
}

const RETRY_MS = 2000;

/**
 * The signers whose trust anchors the API server publishes as ClusterTrustBundles: every signer of the cluster root CA
 * (kubelet client and serving, API clients, the API server's serving certificate, control-plane components). The etcd
 * CAs' signers are not the cluster API's business.
 */
const PUBLISHED_SIGNERS = PROFILES.filter((p) => p.authority === 'root').map((p) => p.name);

function rootOf(view: ClusterView) {
  const root = view.authorities.find((a) => a.kind === 'root');
  if (!root) throw new Error(`cluster ${view.name} has no cluster root CA`);
  return root;
}

/** kubeadm's --discovery-token-ca-cert-hash of the active cluster root CA generation. */
export function caCertHashOf(view: ClusterView): string {
  const root = rootOf(view);
  const active = root.generations.find((g) => g.state === 'active');
  const pem = active?.certificate ?? root.bundle;
  return spkiPin(parseCertificate(pemDecode(pem, 'CERTIFICATE')).publicKey);
}

export { generationOf } from './generations.js';

/** The certificates of root CA generations a completed rotation retired (refused with a hint to get new credentials). */
function retiredRootsOf(view: ClusterView): string | undefined {
  const pem = rootOf(view)
    .generations.filter((g) => g.state === 'retired' && g.certificate)
    .map((g) => g.certificate!)
    .join('');
  return pem || undefined;
}

/**
 * A serving chain for clients that may still hold only an older bundle: the active generation's cross-certificate (its
 * key certified by the generation before it) goes after the leaf, also once the old generation is retired, so that an
 * old kubeconfig still reaches the API server and is told to get new credentials rather than failing TLS.
 */
function withCrossCertificate(cert: string, view: ClusterView): string {
  const cross = rootOf(view).generations.find((g) => g.state === 'active')?.crossCertificate;
  return cross && !cert.includes(cross.trim()) ? cert + cross : cert;
}

/**
 * Starts what the cluster needs, in order: store, store client, cluster caller credential, API server, controllers.
 * A store that is not reachable yet (an etcd cluster still starting) leaves the cluster PROVISIONING and is retried.
 */
export function startClusterRuntime(config: ClusterConfig, d: RuntimeDeps): ClusterRuntime {
  const log = d.log.child({ cluster: config.name });
  let status: ClusterStatus = 'PROVISIONING';
  let message = 'starting';
  let view: ClusterView | undefined;
  let storeServer: RunningStoreProcess | undefined;
  let store: Store | undefined;
  let registries: Registries | undefined;
  let storeUrls: string[] = config.store.type === 'etcd' ? config.store.endpoints : [];
  let api: RunningApiServer | undefined;
  let caller: CaClient | undefined;
  let controllers: { stop(): Promise<void> } | undefined;
  let tunnel: TunnelServer | undefined;
  let nodeAgent: NodeHttpsAgent | undefined;
  let revocations: RevocationList | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let inflight: Promise<void> = Promise.resolve();
  /** The root bundle last published as every root signer's ClusterTrustBundle, and the retry of one that failed. */
  let publishedBundle = '';
  let publishRetry: NodeJS.Timeout | undefined;
  // One record for the API server and the tunnel server (both on this thread); the store's is on its own thread.
  const observed = new ObservedClients();

  const ips = [...new Set(['127.0.0.1', '::1', ...(/^[\d.]+$|:/.test(d.host) ? [d.host] : [])])];
  // The API server's names; the approver never certifies a node for them (nor the CA, which records them as it signs).
  const apiServingDns = ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc'];
  const rootSigned = (cn: string, signer: string, sans?: { dns: string[]; ip: string[] }) =>
    localCredential([{ type: 'CN', value: cn }], (csr) => d.fleetCa.sign(config.name, { signer, csr }), sans ? { sans } : {});
  const apiServing = async (v: ClusterView) => {
    const c = await rootSigned('kube-apiserver', SIGNER_APISERVER_SERVING, { dns: apiServingDns, ip: ips });
    return { ...c, cert: withCrossCertificate(c.cert, v) };
  };
  const tunnelServing = async (v: ClusterView) => {
    const c = await rootSigned('trustplane-tunnel-server', SIGNER_APISERVER_SERVING, { dns: ['localhost'], ip: ips });
    return { ...c, cert: withCrossCertificate(c.cert, v) };
  };
  /** The API server's client to node endpoints: a control-plane certificate, trusting node serving certificates of `bundle`. */
  const newNodeAgent = async (t: TunnelServer, bundle: string) => {
    const c = await rootSigned('system:trustplane:apiserver-kubelet-client', SIGNER_CONTROL_PLANE_COMPONENT);
    return new NodeHttpsAgent(t, { cert: c.cert, key: c.key, ca: bundle, minVersion: d.minVersion });
  };

  /** The control plane's client certificate for its store, from the etcd API CA's active generation. */
  const storeClientCredential = () =>
    localCredential([{ type: 'CN', value: 'system:trustplane:apiserver' }], (csr) => d.fleetCa.sign(config.name, { signer: SIGNER_ETCD_CLIENT, csr }));

  /**
   * Publishes the cluster root CA bundle (both generations while a rotation runs, the new one after) as the
   * ClusterTrustBundle of each root signer, which node agents read their trust from. A failure does not hold up what
   * called it (a rotation step): agents read cluster-info meanwhile, and it is tried again.
   */
  const publishTrust = async (v: ClusterView): Promise<void> => {
    const pem = rootOf(v).bundle;
    if (!registries || stopped || pem === publishedBundle) return;
    try {
      const done = [];
      for (const signer of PUBLISHED_SIGNERS) done.push(await registries.trustBundles.publish(signer, pem));
      publishedBundle = pem;
      if (done.some((r) => r.changed || r.deleted.length)) {
        log.info({ bundles: done.map((r) => r.name), removed: done.flatMap((r) => r.deleted) }, 'ClusterTrustBundles published');
      }
    } catch (e) {
      log.warn({ err: (e as Error).message }, `could not publish the ClusterTrustBundles; trying again in ${RETRY_MS / 1000} s`);
      if (publishRetry) clearTimeout(publishRetry);
      publishRetry = setTimeout(() => view && !stopped && void publishTrust(view), RETRY_MS);
      publishRetry.unref();
    }
  };

  const attempt = async () => {
    view = await d.fleetCa.describeCluster(config.name);
    const etcdApi = view.authorities.find((a) => a.kind === 'etcd-api')!.bundle;
    const root = rootOf(view);
    if (config.store.type === 'embedded' && !storeServer) {
      // On its own thread: the store's commits and gRPC serving then do not queue behind the API server's requests.
      storeServer = await runStoreProcess({ dataDir: d.dataDir, cluster: config.name, ca: d.fleetCa, host: d.host, port: config.store.port || (await stablePort(d.host)), minVersion: d.minVersion, thread: true });
      storeUrls = [storeServer.url];
      const port = Number(new URL(storeServer.url).port);
      if (config.store.port !== port) d.persist({ ...config, store: { type: 'embedded', port } });
      config.store = { type: 'embedded', port };
    }
    if (!store) {
      const client = await storeClientCredential();
      const s = await openStore({ endpoints: storeUrls, tls: { ca: etcdApi, cert: client.cert, key: client.key }, timeoutMs: 5000 });
      try {
        await s.get('/registry/trustplane/nodepools/');
      } catch (e) {
        await s.close();
        throw e;
      }
      store = s;
      // One set for the API server and the controllers: they share one watch per resource.
      registries = createRegistries(s, d.clock);
    }
    if (!revocations) {
      // Revoked node certificates, kept current from the store: refused on their next request, and their tunnels cut.
      revocations = await followRevocations(store, (node, serials) => {
        api?.revocationsChanged();
        tunnel?.disconnect(node);
        log.warn({ node, serials }, 'node credentials revoked: refused from now on');
      });
    }
    if (!caller) {
      const kp = await generateKeyPair({ kind: 'ec', curve: 'P-256' });
      const csr = pemEncode('CERTIFICATE REQUEST', await buildCsr({ subject: [{ type: 'CN', value: 'caller' }], signer: kp.signer }));
      const issued = await d.fleetCa.issueClusterCaller(config.name, csr);
      caller = new CaClient({ url: d.caUrl, cert: issued.certificate, key: kp.privateKeyPem, ca: d.serviceCa });
    }
    if (!tunnel) {
      // Agents dial in here with their kubelet client certificates; the control plane reaches nodes only through it.
      const serving = await tunnelServing(view);
      tunnel = await startTunnelServer({ host: d.host, port: config.tunnelPort || (await stablePort(d.host)), tls: { cert: serving.cert, key: serving.key, clientCa: root.bundle, minVersion: d.minVersion }, clock: d.clock, isRevoked: (_node, serial) => revocations?.has(serial) ?? false, observed });
      if (config.tunnelPort !== tunnel.port) {
        config.tunnelPort = tunnel.port;
        d.persist(config);
      }
      nodeAgent = await newNodeAgent(tunnel, root.bundle);
    }
    await publishTrust(view);
    if (!api) {
      const serving = await apiServing(view);
      const serverUrl = () => api?.url ?? '';
      const tunnelUrl = tunnel.url;
      api = await startApiServer({
        cluster: config.name,
        host: d.host,
        port: config.apiserverPort || (await stablePort(d.host)),
        tls: { cert: serving.cert, key: serving.key, minVersion: d.minVersion },
        clientCa: root.bundle,
        store,
        registries,
        clock: d.clock,
        clusterInfo: () => ({ caBundle: view ? rootOf(view).bundle : root.bundle, server: serverUrl(), tunnelServer: tunnelUrl }),
        nodeTransport: () => nodeAgent,
        isRevoked: (serial) => revocations?.has(serial) ?? false,
        observed,
      });
      api.setRetiredCa(retiredRootsOf(view));
      if (config.apiserverPort !== api.port) {
        config.apiserverPort = api.port;
        d.persist(config);
      }
    }
    if (!controllers) {
      // The signer's requests made in one turn go to the CA service as one sign-batch call.
      const c = new SignBatcher(caller, config.name);
      controllers = await startControllers({
        cluster: config.name,
        store,
        registries,
        ca: {
          sign: async (input) => {
            try {
              const issued = await c.sign({ ...input, csr: typeof input.csr === 'string' ? input.csr : input.csr.toString('utf8') });
              d.countSigning?.(config.name, input.signer, 'signed');
              return issued;
            } catch (e) {
              const reason = (e as { reason?: string }).reason;
              if (reason === 'Forbidden' || reason === 'Invalid' || reason === 'BadRequest') d.countSigning?.(config.name, input.signer, 'refused');
              throw e;
            }
          },
          generationOf: (leaf) => (view ? generationOf(view, leaf) : 0),
        },
        clock: d.clock,
        log: d.log,
        servingReservations: { dns: apiServingDns, ip: ips },
      });
    }
    status = 'RUNNING';
    message = `serving at ${api.url}`;
    log.info({ endpoint: api.url, store: storeUrls }, 'cluster running');
    d.onRunning?.();
  };

  const run = () => {
    inflight = attempt().catch((e: Error) => {
      if (stopped) return;
      status = 'PROVISIONING';
      message = `waiting for the cluster to come up: ${e.message}`;
      log.warn({ err: e.message }, 'cluster not up yet; retrying');
      timer = setTimeout(run, RETRY_MS);
    });
  };
  run();

  return {
    name: config.name,
    status: () => ({ status, message }),
    endpoint: () => api?.url ?? '',
    storeEndpoints: () => storeUrls,
    store() {
      if (!store) throw new Error(`cluster ${config.name}: its state store is not reachable yet (${message})`);
      return store;
    },
    caBundle: () => (view ? rootOf(view).bundle : ''),
    tunnel: () => tunnel,
    nodeAgent: () => nodeAgent,
    caCertHash: () => (view ? caCertHashOf(view) : ''),
    view: () => view,
    async applyTrust(kind: AuthorityKind, next: ClusterView) {
      view = next;
      if (kind === 'etcd-api') {
        // The embedded store first (trust both generations, serve from the active one), then the client's certificate.
        // The members of a real etcd cluster follow by themselves (`trustplane store member`): while they trust only the
        // old generation, the client certificate's chain carries the cross-certificate that they verify it with.
        await storeServer?.reloadTls();
        if (store) {
          const c = await storeClientCredential();
          store.setTls({ ca: next.authorities.find((a) => a.kind === 'etcd-api')!.bundle, cert: c.cert, key: c.key });
        }
        log.info({ authority: kind, generations: next.authorities.find((a) => a.kind === kind)!.generations.map((g) => `g${g.generation}:${g.state}`) }, 'store trust updated');
        return;
      }
      // The etcd peer CA certifies members to each other: the embedded store has no peers.
      if (kind !== 'root' || !api || !tunnel) return;
      const bundle = rootOf(next).bundle;
      // The published bundles first, so that an agent told of the new bundle by an answer's trust header finds it there;
      // then trust (both generations while a rotation runs), then the new certificates that need it.
      await publishTrust(next);
      api.setClientCa(bundle);
      api.setRetiredCa(retiredRootsOf(next));
      tunnel.setClientCa(bundle);
      // An expired active generation signs nothing (the CA refuses): the serving certificates wait for the new one.
      const active = rootOf(next).generations.find((g) => g.state === 'active');
      if (active?.notAfter && Date.parse(active.notAfter) <= d.clock.now().getTime()) {
        log.warn({ authority: kind, notAfter: active.notAfter }, 'trust updated; the active cluster root CA has expired, so serving certificates are re-issued once the new generation is active');
        return;
      }
      const [apiCert, tunnelCert, agent] = await Promise.all([apiServing(next), tunnelServing(next), newNodeAgent(tunnel, bundle)]);
      api.setServingCert(apiCert);
      tunnel.setServingCert(tunnelCert);
      // Requests in flight finish on the old agent's connections; new ones take the new certificate.
      const old = nodeAgent;
      nodeAgent = agent;
      if (old) setTimeout(() => old.destroy(), 60_000).unref();
      log.info({ authority: kind, bundle: rootOf(next).generations.filter((g) => g.state !== 'retired').map((g) => `g${g.generation}:${g.state}`) }, 'trust updated');
    },
    async observedClients() {
      const fromStore = await storeServer?.observedClients().catch(() => []);
      return [...observed.list(), ...(fromStore ?? [])];
    },
    async revokeNode(node: string) {
      if (!store || !registries || !revocations) throw new TrustplaneError('Unavailable', `cluster ${config.name} is not serving yet: ${message}`);
      const r = await revokeNode(store, registries.nodes, node, d.clock.now());
      revocations.learn(node, r.serials);
      return r;
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      if (publishRetry) clearTimeout(publishRetry);
      status = 'STOPPING';
      await inflight; // a start in progress finishes its step; everything it made is closed below
      await controllers?.stop();
      await revocations?.stop();
      await api?.close();
      nodeAgent?.destroy();
      await tunnel?.close();
      caller?.close();
      await store?.close();
      await storeServer?.stop();
      controllers = api = store = storeServer = caller = tunnel = nodeAgent = revocations = undefined;
    },
  };
}
