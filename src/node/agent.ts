// The node agent: joins its cluster (bootstrap token → CSR → client certificate), then talks mTLS only: registers its
// Node, renews its Lease, gets a serving certificate, serves its endpoint through the reverse tunnel, and renews both
// certificates at 70-90 % of their lifetime.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Duplex } from 'node:stream';
import { CLUSTER_INFO_PATH, trustBundleDigest } from '../apiserver/api/cluster-info.js';
import { readTrustBundle } from './trust-bundle-source.js';
import type { NodeAddress } from '../apiserver/registry/node.js';
import { nodeNameProblem, parseCertificates, spkiPin, type ParsedCertificate } from '../pki/index.js';
import type { MinVersion } from '../tls/policy.js';
import { startTunnelAgent, type Backoff, type TunnelAgent } from '../tunnel/agent.js';
import { systemClock, type Clock } from '../util/clock.js';
import { TrustplaneError, invalid } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { openAgentLog } from './agent-log.js';
import { ApiClient, isApiError, type ApiCredentials } from './api-client.js';
import { parseCaCertHash } from './ca-pin.js';
import { requestCertificate, type IssuedCredential } from './certificate-request.js';
import { requestAttestedCertificate } from './shielded-join.js';
import { discoverCluster, parseServerUrl, readClusterInfo } from './discovery.js';
import { startNodeEndpoint, type NodeEndpoint } from './endpoint.js';
import { NodeHeartbeat, type HeartbeatStatus } from './heartbeat.js';
import { TrustFollower } from './trust-follower.js';
import { CertificateRotation } from './rotation.js';
import { NodeState, type NodeConfig, type StoredCredential } from './state.js';

const TOKEN_FORMAT = /^[a-z0-9]{6}\.[a-z0-9]{16}$/;
const SELF_SUBJECT_REVIEW = '/apis/authentication.k8s.io/v1/selfsubjectreviews';

export const DEFAULT_WAIT_TIMEOUT_MS = 120_000;

export interface NodeAgentOptions {
  /** Where the node keeps its credentials and state (created 0700). */
  dataDir: string;
  /** Join inputs; needed only when the data dir holds no credentials yet (or they lapsed and no token is held). */
  server?: string;
  /** Bootstrap token "<id>.<secret>". */
  token?: string;
  /** A shielded node: no token; every client certificate is got by TPM attestation through this TCTI (kept in the data dir's config). */
  shielded?: { tcti: string; pool?: string };
  /** kubeadm-style CA public key pins, "sha256:<hex>". */
  caCertHash?: string | string[];
  /** PEM file with the cluster root CA, instead of or besides a hash. */
  caFile?: string;
  /** Default: the data dir's node name, else this machine's host name. */
  nodeName?: string;
  /** Default: InternalIP 127.0.0.1 and Hostname <node name>; they are also the serving certificate's SANs. */
  addresses?: NodeAddress[];
  /** How long to wait for each certificate to be approved and issued; default 2 min. */
  waitTimeoutMs?: number;
  /** spec.expirationSeconds of the client / serving CSRs (at least 600); the signer's default when absent. */
  clientCertExpirationSeconds?: number;
  servingCertExpirationSeconds?: number;
  /** Lease renewal period, default 10 s; lease duration, default 40 s; Node status period, default 5 min. */
  leaseIntervalMs?: number;
  leaseDurationSeconds?: number;
  nodeStatusIntervalMs?: number;
  /** Longest sleep of the renewal loops between looks at the clock; default 60 s. */
  rotationPollMs?: number;
  clock?: Clock;
  minVersion?: MinVersion;
  /** Also serve the node endpoint on loopback (tests, local debugging). It never listens on other addresses. */
  endpoint?: { listen?: { host?: string; port?: number } };
  /** The reverse tunnel: on when the cluster names a tunnel server, unless `enabled` is false. */
  tunnel?: { enabled?: boolean; url?: string; backoff?: Backoff };
  /** Log to standard error as well as to agent.log. */
  logToStderr?: boolean;
  logLevel?: string;
}

export interface CertificateStatus {
  serial: string;
  notBefore: string;
  notAfter: string;
  renewAt: string;
  renewals: number;
  lastError?: string;
}

export interface NodeAgentStatus {
  nodeName: string;
  server: string;
  dataDir: string;
  phase: 'running' | 'stopped' | 'failed';
  error?: string;
  clientCertificate: CertificateStatus;
  /** Null until the serving certificate has been issued. */
  servingCertificate: CertificateStatus | null;
  servingError?: string;
  heartbeat: HeartbeatStatus;
  tunnel: { url: string; connected: boolean; lastError?: string } | null;
  endpoint: string | null;
}

export interface NodeAgent {
  readonly nodeName: string;
  readonly dataDir: string;
  status(): NodeAgentStatus;
  /** Resolves when stopped; rejects with a TrustplaneError when the agent cannot go on (credentials lapsed, no valid token). */
  readonly done: Promise<void>;
  /** Serves one connection on the node endpoint (what the reverse tunnel does with each stream). */
  handleConnection(socket: Duplex): void;
  /** The client certificate in use now (PEM chain); no key. */
  clientCertificate(): string;
  stop(): Promise<void>;
}

/** This package's version, for nodeInfo. */
export function agentVersion(): string {
  for (const rel of ['../../../package.json', '../../package.json']) {
    try {
      return (JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string }).version ?? 'unknown';
    } catch {
      // Next candidate.
    }
  }
  return 'unknown';
}

function defaultNodeName(): string {
  const h = hostname().toLowerCase().split('.')[0];
  const problem = nodeNameProblem(h);
  if (problem) throw invalid(`this machine's host name ${JSON.stringify(hostname())} is not a valid node name: ${problem}`, 'pass --name with lower-case letters, digits, "-" and "."');
  return h;
}

/** The node name given to the agent, by the one node-identity rule; an Invalid error saying what is wrong. */
export function checkNodeName(n: string): string {
  const problem = nodeNameProblem(n);
  if (problem) throw invalid(problem, 'use lower-case letters, digits, "-" and ".", at most 253 characters');
  return n;
}

function pinsOfBundle(pem: string): string[] {
  return [...new Set(parseCertificates(pem).map((c) => spkiPin(c.publicKey)))];
}

function certStatus(leaf: ParsedCertificate, rotation: CertificateRotation<ParsedCertificate> | undefined): CertificateStatus {
  return {
    serial: leaf.serialHex,
    notBefore: leaf.notBefore.toISOString(),
    notAfter: leaf.notAfter.toISOString(),
    renewAt: rotation ? rotation.renewAt().toISOString() : '',
    renewals: rotation?.renewals ?? 0,
    ...(rotation?.lastError ? { lastError: rotation.lastError } : {}),
  };
}

/** Whether a serving certificate names exactly what the node's addresses say (else it is asked for again). */
function servesAddresses(leaf: ParsedCertificate, sans: { dns: string[]; ip: string[] }): boolean {
  const same = (a: string[], b: string[]) => a.length === b.length && a.every((x) => b.includes(x));
  return same(leaf.sans.dns, sans.dns) && same(leaf.sans.ip, sans.ip);
}

function sansOf(addresses: NodeAddress[]): { dns: string[]; ip: string[] } {
  const ip = addresses.filter((a) => /^[\d.]+$|:/.test(a.address)).map((a) => a.address);
  const dns = addresses.filter((a) => !/^[\d.]+$|:/.test(a.address)).map((a) => a.address.toLowerCase());
  return { dns: [...new Set(dns)], ip: [...new Set(ip)] };
}

/**
 * Joins the cluster (if the data dir holds no credentials yet) and runs the agent. Requires the join inputs — server,
 * token, CA hash or CA file — unless the node has joined before, in which case its credentials are reused.
 */
export async function joinNode(o: NodeAgentOptions): Promise<NodeAgent> {
  if (!o.server) throw invalid('--server is required to join', 'pass the API server URL, https://HOST:PORT');
  if (!o.token && !o.shielded) throw invalid('--token is required to join (or --shielded, for a node whose TPM is enrolled)', 'make one with `trustplane node-pools bootstrap-token POOL --cluster CLUSTER`');
  return startNodeAgent(o);
}

/** Runs the agent on the data dir's credentials, joining first when there are none and join inputs are given. */
export async function startNodeAgent(o: NodeAgentOptions): Promise<NodeAgent> {
  const clock = o.clock ?? systemClock;
  const state = new NodeState(o.dataDir);
  state.ensureDirs();
  const logs = openAgentLog(state.paths.log, { stderr: o.logToStderr, level: o.logLevel });
  const log = logs.log;
  const cleanups: Array<() => Promise<void> | void> = [() => logs.close()];
  const cleanup = async () => {
    for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
  };
  try {
    return await run(o, state, clock, log, cleanups, cleanup);
  } catch (e) {
    log.error({ err: (e as Error).message }, 'the node agent could not start');
    await cleanup();
    throw e;
  }
}

async function run(
  o: NodeAgentOptions,
  state: NodeState,
  clock: Clock,
  log: Logger,
  cleanups: Array<() => Promise<void> | void>,
  cleanup: () => Promise<void>,
): Promise<NodeAgent> {
  const waitTimeoutMs = o.waitTimeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS;
  const dir = state.paths.dir;
  if (o.token !== undefined && !TOKEN_FORMAT.test(o.token)) {
    throw invalid('--token is not a bootstrap token', 'a token looks like abcdef.0123456789abcdef: 6 and 16 lower-case letters or digits');
  }
  const givenPins = (Array.isArray(o.caCertHash) ? o.caCertHash : o.caCertHash ? [o.caCertHash] : []).map(parseCaCertHash);

  let config = state.readConfig();
  let caBundle = state.readCaBundle();
  const nodeName = checkNodeName(o.nodeName ?? config?.nodeName ?? defaultNodeName());

  if (config && caBundle) {
    // The data dir belongs to one node of one cluster: refuse inputs that name another.
    const refuse = (what: string) =>
      invalid(`node data dir ${dir} belongs to node "${config!.nodeName}" of the cluster at ${config!.server}; ${what}`, `use another --node-data-dir, or remove ${dir} to join anew`);
    if (config.nodeName !== nodeName) throw refuse(`--name "${nodeName}" names another node`);
    if (o.server && parseServerUrl(o.server).origin !== config.server) throw refuse(`--server ${o.server} names another API server`);
    const have = pinsOfBundle(caBundle);
    if (givenPins.length && !givenPins.some((p) => have.includes(p))) throw refuse(`its CA hash is ${have.join(' or ')}, not ${givenPins.join(' or ')}`);
  } else {
    if (!o.server || (!o.token && !o.shielded)) {
      throw new TrustplaneError(
        'NotFound',
        `node data dir ${dir} holds no credentials: this node has not joined a cluster`,
        'join with `trustplane node join --server URL --token TOKEN --ca-cert-hash sha256:...` (`trustplane node-pools bootstrap-token POOL --cluster CLUSTER` prints it)',
      );
    }
    log.info({ server: o.server, node: nodeName }, 'discovering the cluster');
    const found = await discoverCluster({ server: o.server, caCertHashes: givenPins, caFile: o.caFile, minVersion: o.minVersion, timeoutMs: 15_000 });
    log.info({ server: found.server, caCertHashes: found.caCertHashes, tunnelServer: found.tunnelServer ?? null }, 'the cluster CA matches; its API server is authenticated');
    caBundle = found.caBundle;
    config = {
      server: found.server,
      nodeName,
      ...(found.tunnelServer ? { tunnelServer: found.tunnelServer } : {}),
      caCertHashes: found.caCertHashes,
      joinedAt: clock.now().toISOString(),
      ...(o.shielded ? { shielded: o.shielded } : {}),
    };
    state.writeCaBundle(caBundle);
    state.writeConfig(config);
  }
  // A shielded node proves its TPM instead: it holds no token, on disk or anywhere else.
  const shielded = o.shielded ?? config.shielded;
  if (shielded && o.token) throw invalid(`node ${nodeName} is a shielded node: it joins by TPM attestation and takes no bootstrap token`, 'run it without --token and without $TRUSTPLANE_BOOTSTRAP_TOKEN');
  if (shielded && o.shielded && !config.shielded) throw invalid(`node data dir ${dir} belongs to a node that joined with a bootstrap token, not a shielded one`, `use another --node-data-dir, or remove ${dir} to join anew`);
  if (shielded && o.shielded && config.shielded && (o.shielded.tcti !== config.shielded.tcti || o.shielded.pool !== config.shielded.pool)) {
    config.shielded = o.shielded;
    state.writeConfig(config);
  }
  // A token given now is kept: it is what lets the node join again if its client certificate lapses while offline.
  if (o.token) state.writeToken(o.token);
  const cfg: NodeConfig = config;
  // The cluster root CA bundle: replaced when a credential rotation changes it (see followTrust below).
  let bundle: string = caBundle;
  let bundleDigest = trustBundleDigest(bundle);

  const reqOpts = (api: ApiClient) => ({ api, state, caBundle: bundle, clock, log, timeoutMs: waitTimeoutMs });
  const clientSpec = { kind: 'client' as const, nodeName, ...(o.clientCertExpirationSeconds ? { expirationSeconds: o.clientCertExpirationSeconds } : {}) };
  const joinCommand = `trustplane node join --server ${cfg.server} --token TOKEN --ca-cert-hash ${pinsOfBundle(bundle)[0]} --name ${nodeName} --node-data-dir ${dir}`;
  const lapsed = (why: string) =>
    new TrustplaneError(
      'Unauthorized',
      `node ${nodeName} cannot authenticate: ${why}`,
      `make a new bootstrap token with \`trustplane node-pools bootstrap-token POOL --cluster CLUSTER\`, then run \`${joinCommand}\``,
    );

  /** A shielded node's client certificate: TPM attestation, for the first join, every renewal and after a lapse. */
  const attest = (why?: string): Promise<IssuedCredential> => {
    log.info({ tcti: shielded!.tcti, ...(why ? { why } : {}) }, 'requesting a client certificate by TPM attestation');
    return requestAttestedCertificate({
      server: cfg.server,
      caBundle: bundle,
      nodeName,
      tcti: shielded!.tcti,
      ...(shielded!.pool ? { pool: shielded!.pool } : {}),
      state,
      clock,
      log,
      timeoutMs: waitTimeoutMs,
      minVersion: o.minVersion,
      ...(o.clientCertExpirationSeconds ? { expirationSeconds: o.clientCertExpirationSeconds } : {}),
    });
  };

  /** A client certificate got with the bootstrap token held (the first join, or a re-join after a lapse). */
  const bootstrap = async (why?: string): Promise<IssuedCredential> => {
    if (shielded) return attest(why);
    const token = state.readToken();
    if (!token) throw lapsed(`${why ?? 'it has no client certificate'}, and no bootstrap token is held to join again`);
    const tokenId = token.split('.')[0];
    log.info({ tokenId, ...(why ? { why } : {}) }, 'requesting a client certificate with the bootstrap token');
    const tokenApi = new ApiClient(cfg.server, { token, ca: bundle }, { minVersion: o.minVersion });
    try {
      return await requestCertificate(clientSpec, reqOpts(tokenApi));
    } catch (e) {
      if (isApiError(e, 401)) {
        const msg = `the API server at ${cfg.server} refused bootstrap token ${tokenId}: it is unknown, expired or deleted`;
        if (why) throw lapsed(`${why}, and ${msg}`);
        throw new TrustplaneError('Unauthorized', msg, 'make a new one with `trustplane node-pools bootstrap-token POOL --cluster CLUSTER` and join with it');
      }
      throw e;
    } finally {
      tokenApi.close();
    }
  };

  let client: StoredCredential | undefined;
  try {
    client = state.readCredential('client');
  } catch (e) {
    log.warn({ err: (e as Error).message }, 'the stored client certificate cannot be read; joining again');
  }
  if (!client) client = await bootstrap();
  else if (clock.now() >= client.leaf.notAfter) {
    client = await bootstrap(`its client certificate expired at ${client.leaf.notAfter.toISOString()}`);
  } else log.info({ serial: client.leaf.serialHex, notAfter: client.leaf.notAfter.toISOString() }, 'reusing the stored client certificate');

  const creds = (c: StoredCredential): ApiCredentials => ({ cert: c.cert, key: c.key, ca: bundle });
  let onTrust: (value: string) => void = () => undefined;
  const api = new ApiClient(cfg.server, creds(client), { minVersion: o.minVersion, onTrustHeader: (v) => onTrust(v) });
  cleanups.push(() => api.close());

  /**
   * Takes the bundle published now (the API server's serving signer's ClusterTrustBundle whose digest is `digest`, else
   * cluster-info; read over a connection the current bundle verified); true when it changed.
   */
  const refreshBundle = async (digest?: string): Promise<boolean> => {
    const read = await readTrustBundle(api, cfg.server, digest);
    const next = trustBundleDigest(read.pem);
    if (next === bundleDigest) return false;
    bundle = read.pem;
    bundleDigest = next;
    state.writeCaBundle(bundle);
    api.setCredentials(creds(client!));
    log.info({ caCertHashes: pinsOfBundle(bundle), from: read.source }, 'the cluster root CA bundle changed (credential rotation); trusting the new one');
    return true;
  };

  // Who the API server says we are: a rejected certificate (revoked CA generation, another cluster) means joining again.
  try {
    const who = await api.post<{ status?: { userInfo?: { username?: string } } }>(SELF_SUBJECT_REVIEW, { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' });
    if (who.status?.userInfo?.username !== `system:node:${nodeName}`) throw lapsed(`the API server takes its certificate for ${who.status?.userInfo?.username}`);
  } catch (e) {
    // 401: unknown here (revoked, another cluster); 403 with no user: issued by a root CA generation since retired.
    if (!isApiError(e, 401) && !(isApiError(e, 403) && /retired generation/.test(e.message))) throw e;
    await refreshBundle().catch((err: Error) => log.warn({ err: err.message }, 'could not read cluster-info for a newer CA bundle'));
    client = await bootstrap('the API server no longer accepts its client certificate');
    api.setCredentials(creds(client));
  }

  // The cluster may have gained (or moved) its tunnel server since the join.
  try {
    const info = readClusterInfo(await api.get(CLUSTER_INFO_PATH), cfg.server);
    if ((info.tunnelServer ?? '') !== (cfg.tunnelServer ?? '')) {
      cfg.tunnelServer = info.tunnelServer;
      state.writeConfig(cfg);
    }
  } catch (e) {
    log.warn({ err: (e as Error).message }, 'could not read cluster-info again; keeping the tunnel server URL known');
  }

  let fatal: ((e: Error) => void) | undefined;
  let finish: (() => void) | undefined;
  const done = new Promise<void>((resolve, reject) => {
    finish = resolve;
    fatal = reject;
  });
  done.catch(() => undefined);
  let phase: NodeAgentStatus['phase'] = 'running';
  let error: string | undefined;

  // Registration and heartbeats.
  const addresses = o.addresses ?? [
    { type: 'InternalIP', address: '127.0.0.1' },
    { type: 'Hostname', address: nodeName },
  ];
  const version = agentVersion();
  const heartbeat = new NodeHeartbeat({
    api: () => api,
    facts: { nodeName, addresses, agentVersion: version },
    clock,
    log,
    leaseIntervalMs: o.leaseIntervalMs,
    leaseDurationSeconds: o.leaseDurationSeconds,
    statusIntervalMs: o.nodeStatusIntervalMs,
  });
  await heartbeat.registerNode();
  heartbeat.start();
  cleanups.push(() => heartbeat.stop());

  // The tunnel and every rotation read the credentials through these.
  let tunnel: TunnelAgent | undefined;
  const useClient = (c: StoredCredential) => {
    client = c;
    api.setCredentials(creds(c));
    tunnel?.updateCredentials();
  };

  const clientRotation = new CertificateRotation<ParsedCertificate>({
    what: 'client certificate',
    clock,
    log,
    pollMs: o.rotationPollMs,
    current: () => client!.leaf,
    renew: async () => useClient(shielded ? await attest() : await requestCertificate(clientSpec, reqOpts(api))),
    onExpired: async () => {
      try {
        useClient(await bootstrap(`its client certificate expired at ${client!.leaf.notAfter.toISOString()} before it could be renewed`));
      } catch (e) {
        if (e instanceof TrustplaneError && e.reason === 'Unauthorized') {
          phase = 'failed';
          error = e.message;
          log.error({ err: e.message, hint: e.hint }, 'the node agent cannot go on');
          fatal?.(e);
        }
        throw e;
      }
    },
  });
  clientRotation.start();
  cleanups.push(() => clientRotation.stop());

  // The serving certificate and the endpoint it serves.
  const sans = sansOf(addresses);
  const servingSpec = { kind: 'server' as const, nodeName, sans, ...(o.servingCertExpirationSeconds ? { expirationSeconds: o.servingCertExpirationSeconds } : {}) };
  let serving: StoredCredential | undefined;
  try {
    const stored = state.readCredential('server');
    if (stored && clock.now() < stored.leaf.notAfter && servesAddresses(stored.leaf, sans)) serving = stored;
  } catch (e) {
    log.warn({ err: (e as Error).message }, 'the stored serving certificate cannot be read; requesting a new one');
  }
  let servingError: string | undefined;
  let endpoint: NodeEndpoint | undefined;
  let servingRotation: CertificateRotation<ParsedCertificate> | undefined;
  let stopped = false;
  const configz = () => ({
    kind: 'NodeAgentConfiguration',
    apiVersion: 'trustplane.io/v1alpha1',
    nodeName,
    server: cfg.server,
    tunnelServer: cfg.tunnelServer ?? '',
    caCertHashes: pinsOfBundle(bundle),
    dataDir: dir,
    addresses,
    agentVersion: version,
    leaseIntervalMs: o.leaseIntervalMs ?? 10_000,
    leaseDurationSeconds: o.leaseDurationSeconds ?? 40,
    nodeStatusIntervalMs: o.nodeStatusIntervalMs ?? 300_000,
    clientCertExpirationSeconds: o.clientCertExpirationSeconds ?? null,
    servingCertExpirationSeconds: o.servingCertExpirationSeconds ?? null,
    waitTimeoutMs,
  });

  /** The node's own certificate lifetimes, as Prometheus text for /metrics. */
  const metrics = () => {
    const now = clock.now().getTime() / 1000;
    const certs: Array<[string, ParsedCertificate | undefined]> = [['client', client?.leaf], ['serving', serving?.leaf]];
    const lines = [
      '# HELP trustplane_node_certificate_expiration_timestamp_seconds Not-after of the node agent\'s certificate, Unix seconds',
      '# TYPE trustplane_node_certificate_expiration_timestamp_seconds gauge',
      ...certs.filter(([, l]) => l).map(([k, l]) => `trustplane_node_certificate_expiration_timestamp_seconds{node="${nodeName}",kind="${k}"} ${l!.notAfter.getTime() / 1000}`),
      '# HELP trustplane_node_certificate_ttl_seconds Time left until the node agent\'s certificate expires',
      '# TYPE trustplane_node_certificate_ttl_seconds gauge',
      ...certs.filter(([, l]) => l).map(([k, l]) => `trustplane_node_certificate_ttl_seconds{node="${nodeName}",kind="${k}"} ${Math.round(l!.notAfter.getTime() / 1000 - now)}`),
    ];
    return lines.join('\n') + '\n';
  };

  const startServing = async (cred: StoredCredential) => {
    serving = cred;
    endpoint = await startNodeEndpoint({ cert: cred.cert, key: cred.key, clientCa: bundle, minVersion: o.minVersion, logFile: state.paths.log, configz, metrics, listen: o.endpoint?.listen });
    cleanups.push(() => endpoint?.close());
    servingRotation = new CertificateRotation<ParsedCertificate>({
      what: 'serving certificate',
      clock,
      log,
      pollMs: o.rotationPollMs,
      current: () => serving!.leaf,
      renew: async () => {
        const next = await requestCertificate(servingSpec, reqOpts(api));
        serving = next;
        endpoint?.setServingCert(next);
      },
      onExpired: async () => {
        const next = await requestCertificate(servingSpec, reqOpts(api));
        serving = next;
        endpoint?.setServingCert(next);
      },
    });
    servingRotation.start();
    cleanups.push(() => servingRotation?.stop());
    log.info({ serial: cred.leaf.serialHex, notAfter: cred.leaf.notAfter.toISOString(), url: endpoint.url ?? null }, 'node endpoint serving');
  };

  // The first request is waited for; if it does not succeed, it is retried in the background and the rest runs.
  let servingRetry: NodeJS.Timeout | undefined;
  const getServing = async (attempt: number): Promise<void> => {
    try {
      const cred = serving ?? (await requestCertificate(servingSpec, reqOpts(api)));
      if (stopped) return;
      servingError = undefined;
      await startServing(cred);
    } catch (e) {
      servingError = (e as Error).message;
      log.warn({ err: servingError }, 'no serving certificate yet; the node endpoint is not served; will retry');
      if (!stopped) servingRetry = setTimeout(() => void getServing(attempt + 1), Math.min(300_000, 5000 * 2 ** Math.min(attempt, 6)));
    }
  };
  cleanups.push(() => clearTimeout(servingRetry));
  await getServing(0);

  // The reverse tunnel: the control plane reaches the node endpoint through it.
  const tunnelUrl = o.tunnel?.url ?? cfg.tunnelServer;
  if (tunnelUrl && o.tunnel?.enabled !== false) {
    tunnel = startTunnelAgent({
      url: tunnelUrl,
      credentials: () => ({ cert: client!.cert, key: client!.key, ca: bundle }),
      onStream: (stream) => (endpoint ? endpoint.handleConnection(stream) : stream.destroy()),
      backoff: o.tunnel?.backoff,
      minVersion: o.minVersion,
      log: (msg, fields) => log.info(fields ?? {}, msg),
    });
    cleanups.push(() => tunnel?.close());
  }

  // Following a credential rotation without a restart: every API answer carries the digest of the bundle the server
  // trusts and the key id of the generation that signs now. A different bundle is fetched from cluster-info; a client or
  // serving certificate from an older generation is re-issued at once (not at 70-90 % of its life), so that the rotation
  // can complete. One follow-up at a time; a generation that did not take is not asked for again in a loop.
  const follower = new TrustFollower({
    bundleDigest: () => bundleDigest,
    refreshBundle: async (t) => {
      if (await refreshBundle(t.digest)) endpoint?.setClientCa(bundle);
    },
    certificates: [
      { what: 'client certificate', leaf: () => client?.leaf, reissue: async () => useClient(shielded ? await attest() : await requestCertificate(clientSpec, reqOpts(api))) },
      {
        what: 'serving certificate',
        leaf: () => serving?.leaf,
        reissue: async () => {
          const next = await requestCertificate(servingSpec, reqOpts(api));
          serving = next;
          endpoint?.setServingCert(next);
        },
      },
    ],
    log,
  });
  onTrust = follower.observe;
  cleanups.push(() => follower.stop());

  log.info({ node: nodeName, server: cfg.server, tunnel: tunnelUrl ?? null }, 'node agent running');
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      stopped = true;
      if (phase === 'running') phase = 'stopped';
      log.info('node agent stopping');
      // Closing the client first ends requests and watches in flight, so renewals and heartbeats stop at once.
      api.close();
      await cleanup();
      finish?.();
    })();
    return stopping;
  };
  // A fatal error stops everything it can, and leaves the reason in status() and `done`.
  void done.catch(() => stop());

  return {
    nodeName,
    dataDir: dir,
    done,
    handleConnection(socket: Duplex) {
      if (endpoint) endpoint.handleConnection(socket);
      else socket.destroy();
    },
    clientCertificate: () => client!.cert,
    status(): NodeAgentStatus {
      return {
        nodeName,
        server: cfg.server,
        dataDir: dir,
        phase,
        ...(error ? { error } : {}),
        clientCertificate: certStatus(client!.leaf, clientRotation),
        servingCertificate: serving ? certStatus(serving.leaf, servingRotation) : null,
        ...(servingError ? { servingError } : {}),
        heartbeat: { ...heartbeat.status },
        tunnel: tunnel && tunnelUrl ? { url: tunnelUrl, connected: tunnel.connected, ...(tunnel.lastError ? { lastError: tunnel.lastError } : {}) } : null,
        endpoint: endpoint?.url ?? null,
      };
    },
    stop,
  };
}
