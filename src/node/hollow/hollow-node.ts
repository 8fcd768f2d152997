// One hollow node: the node agent's trust duties with nothing else — its own P-256 keys, client and serving CSRs, mTLS
// API calls, its Node and Lease, its endpoint served through its own reverse tunnel, and following a rotation of the
// cluster root CA (TrustFollower, as the agent) — and no data dir, log file or timers of its own.
import { devNull } from 'node:os';
import type { Lease } from '../../apiserver/registry/lease.js';
import { microTimestamp } from '../../apiserver/registry/meta.js';
import type { NodeAddress } from '../../apiserver/registry/node.js';
import type { MinVersion } from '../../tls/policy.js';
import { startTunnelAgent, type Backoff, type TunnelAgent } from '../../tunnel/agent.js';
import type { Clock } from '../../util/clock.js';
import { TrustplaneError } from '../../util/errors.js';
import type { Logger } from '../../util/log.js';
import { ApiClient, isApiError } from '../api-client.js';
import { requestCertificate, type CertificateRequestSpec, type IssuedCredential } from '../certificate-request.js';
import { startNodeEndpoint, type NodeEndpoint } from '../endpoint.js';
import { LEASES_PATH, NodeHeartbeat } from '../heartbeat.js';
import type { ClusterBundle, TrustBundle } from './cluster-bundle.js';
import type { InFlightLimit } from './in-flight-limit.js';
import type { LeaseWheel } from './lease-wheel.js';
import { MemoryNodeState } from './memory-state.js';
import { authorityKeyIdOf, TrustFollower, type TrustFollowerStats } from '../trust-follower.js';

/** What every hollow node of one process shares: the cluster found once, its bundle, the lease wheel and the limit on re-issues. */
export interface HollowNodeContext {
  /** The API server's origin, as discovery authenticated it. */
  server: string;
  /** The cluster root CA bundle, authenticated once by its pin, and read again from cluster-info when a rotation changes it. */
  bundle: ClusterBundle;
  /** The tunnel server cluster-info names; no tunnel when absent. */
  tunnelServer?: string;
  token: string;
  agentVersion: string;
  waitTimeoutMs: number;
  leaseDurationSeconds: number;
  wheel: LeaseWheel;
  clock: Clock;
  log: Logger;
  minVersion?: MinVersion;
  tunnelBackoff?: Backoff;
  /** A node re-issues its certificates under a new signing generation after a random 0..rotationJitterMs. */
  rotationJitterMs: number;
  /** Re-issues in flight at most across the nodes of the process. */
  reissues: InFlightLimit;
}

/** The steps of a join, in order: client certificate, Node and Lease, serving certificate, tunnel accepted. */
export type HollowJoinStep = 'clientCertificate' | 'register' | 'servingCertificate' | 'tunnel';

export type HollowNodePhase = 'pending' | 'joining' | 'ready' | 'failed' | 'stopped';

export interface HollowNodeStatus {
  name: string;
  phase: HollowNodePhase;
  error?: string;
  /** From the first use of the token to Node Ready with the tunnel accepted. */
  joinMs?: number;
  /** How long each step of the join took, in ms. */
  steps?: Partial<Record<HollowJoinStep, number>>;
  tunnelConnected: boolean;
  leaseRenewals: number;
  leaseFailures: number;
  lastLeaseError?: string;
  /** Authority key ids (hex) of the CA that issued its client and serving certificates. */
  clientIssuer?: string;
  servingIssuer?: string;
  /** Following rotations of the cluster root CA: follow-ups, certificates re-issued, failures. */
  trust: TrustFollowerStats & { following: boolean; bundleDigest: string };
}

export class HollowNode {
  phase: HollowNodePhase = 'pending';
  error: string | undefined;
  joinMs: number | undefined;
  readonly steps: Partial<Record<HollowJoinStep, number>> = {};
  /** The kubelet client and serving credentials (PEM chain and key), once issued. */
  client: IssuedCredential | undefined;
  serving: IssuedCredential | undefined;
  private readonly state: MemoryNodeState;
  private readonly apis = new Set<ApiClient>();
  /** The mTLS client, once the client certificate is issued. */
  private api: ApiClient | undefined;
  private heartbeat: NodeHeartbeat | undefined;
  private lease: Lease | undefined;
  private leaseRenewals = 0;
  private leaseFailures = 0;
  private lastLeaseError: string | undefined;
  /** The bundle this node trusts now: its API client, endpoint and tunnel use it. */
  private bundle: TrustBundle;
  private readonly follower: TrustFollower;
  private endpoint: NodeEndpoint | undefined;
  private tunnel: TunnelAgent | undefined;
  private leaveWheel: (() => void) | undefined;
  private joining: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private halt!: (e: Error) => void;
  /** Rejects when stop() is called: what a join waiting on something that is not a request races with. */
  private readonly halted = new Promise<never>((_, reject) => (this.halt = reject));

  constructor(
    readonly name: string,
    private readonly c: HollowNodeContext,
  ) {
    this.state = new MemoryNodeState(name);
    this.halted.catch(() => undefined);
    this.bundle = c.bundle.current;
    this.follower = new TrustFollower({
      bundleDigest: () => this.bundle.digest,
      refreshBundle: (t) => this.refreshBundle(t.digest),
      certificates: [
        { what: 'client certificate', leaf: () => this.client?.leaf, reissue: () => this.reissueClient() },
        { what: 'serving certificate', leaf: () => this.serving?.leaf, reissue: () => this.reissueServing() },
      ],
      jitterMs: c.rotationJitterMs,
      schedule: (reissues) => c.reissues.run(reissues),
      log: c.log,
    });
  }

  private apiClient(credentials: ConstructorParameters<typeof ApiClient>[1], onTrustHeader?: (value: string) => void): ApiClient {
    const api = new ApiClient(this.c.server, credentials, { minVersion: this.c.minVersion, onTrustHeader });
    this.apis.add(api);
    return api;
  }

  private request(api: ApiClient) {
    return { api, state: this.state, caBundle: this.bundle.pem, clock: this.c.clock, log: this.c.log, timeoutMs: this.c.waitTimeoutMs };
  }

  private credentials(c: IssuedCredential) {
    return { cert: c.cert, key: c.key, ca: this.bundle.pem };
  }

  private get servingSpec(): CertificateRequestSpec {
    // The approver grants a serving certificate for its own name and the address the control plane saw it connect from.
    return { kind: 'server', nodeName: this.name, sans: { dns: [this.name], ip: ['127.0.0.1'] } };
  }

  /** Trusts the bundle cluster-info has now (read once per process per change) in its API client and endpoint. */
  private async refreshBundle(digest: string): Promise<void> {
    const api = this.api;
    if (!api) return;
    const next = await this.c.bundle.lookup(digest, api);
    if (next.digest === this.bundle.digest) return;
    this.bundle = next;
    api.setCredentials(this.credentials(this.client!));
    this.endpoint?.setClientCa(next.pem);
  }

  /** A client certificate of the generation that signs now, asked for with the current one (the approver's renewal rule). */
  private async reissueClient(): Promise<void> {
    const api = this.api!;
    const next = await requestCertificate({ kind: 'client', nodeName: this.name }, this.request(api));
    this.client = next;
    api.setCredentials(this.credentials(next));
    // The tunnel dials again with it, and drops its old connection only once the new one is accepted.
    this.tunnel?.updateCredentials();
  }

  private async reissueServing(): Promise<void> {
    const next = await requestCertificate(this.servingSpec, this.request(this.api!));
    this.serving = next;
    this.endpoint?.setServingCert(next);
  }

  /** Token → client certificate → Node → Lease → serving certificate → endpoint behind the tunnel. Throws when it cannot. */
  join(): Promise<void> {
    this.joining ??= this.run();
    return this.joining;
  }

  private async run(): Promise<void> {
    const t0 = performance.now();
    let mark = t0;
    const step = (name: HollowJoinStep) => {
      const now = performance.now();
      this.steps[name] = now - mark;
      mark = now;
    };
    this.phase = 'joining';
    try {
      const tokenApi = this.apiClient({ token: this.c.token, ca: this.bundle.pem });
      try {
        this.client = await requestCertificate({ kind: 'client', nodeName: this.name }, this.request(tokenApi));
      } finally {
        tokenApi.close();
        this.apis.delete(tokenApi);
      }
      step('clientCertificate');
      this.throwIfStopping();
      const api = this.apiClient(this.credentials(this.client), this.follower.observe);
      this.api = api;
      const addresses: NodeAddress[] = [
        { type: 'InternalIP', address: '127.0.0.1' },
        { type: 'Hostname', address: this.name },
      ];
      this.heartbeat = new NodeHeartbeat({
        api: () => api,
        facts: { nodeName: this.name, addresses, agentVersion: this.c.agentVersion },
        clock: this.c.clock,
        log: this.c.log,
        leaseDurationSeconds: this.c.leaseDurationSeconds,
      });
      await this.heartbeat.registerNode();
      await this.renewLease();
      step('register');
      this.throwIfStopping();
      this.serving = await requestCertificate(this.servingSpec, this.request(api));
      step('servingCertificate');
      this.throwIfStopping();
      const clientCa = this.bundle.pem;
      this.endpoint = await startNodeEndpoint({
        cert: this.serving.cert,
        key: this.serving.key,
        clientCa,
        minVersion: this.c.minVersion,
        // Hollow nodes keep no log: /logs is empty.
        logFile: devNull,
        configz: () => ({ kind: 'NodeAgentConfiguration', apiVersion: 'trustplane.io/v1alpha1', nodeName: this.name, hollow: true, server: this.c.server, tunnelServer: this.c.tunnelServer ?? '' }),
      });
      // A rotation followed while the endpoint started: it trusts what the node trusts now.
      if (this.bundle.pem !== clientCa) this.endpoint.setClientCa(this.bundle.pem);
      this.throwIfStopping();
      if (this.c.tunnelServer) {
        const endpoint = this.endpoint;
        this.tunnel = startTunnelAgent({
          url: this.c.tunnelServer,
          credentials: () => this.credentials(this.client!),
          onStream: (stream) => endpoint.handleConnection(stream),
          backoff: this.c.tunnelBackoff,
          minVersion: this.c.minVersion,
        });
        await this.accepted(this.tunnel);
      }
      step('tunnel');
      this.throwIfStopping();
      this.leaveWheel = this.c.wheel.add({ renew: () => this.renewLease() });
      this.joinMs = performance.now() - t0;
      this.phase = 'ready';
    } catch (e) {
      if (!this.stopping) {
        this.phase = 'failed';
        this.error = (e as Error).message;
      }
      throw e;
    }
  }

  /** The tunnel's welcome, as TunnelAgent.waitConnected, but given up (timer and listener gone) the moment stop() is called. */
  private accepted(tunnel: TunnelAgent): Promise<void> {
    if (tunnel.connected) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const done = (e?: Error) => {
        clearTimeout(timer);
        tunnel.off('connected', onConnected);
        if (e) reject(e);
        else resolve();
      };
      const onConnected = () => done();
      const timer = setTimeout(
        () => done(new TrustplaneError('Timeout', `the tunnel of hollow node ${this.name} was not accepted within ${this.c.waitTimeoutMs} ms${tunnel.lastError ? `: ${tunnel.lastError}` : ''}`)),
        this.c.waitTimeoutMs,
      );
      tunnel.once('connected', onConnected);
      this.halted.catch((e: Error) => done(e));
    });
  }

  private throwIfStopping(): void {
    if (this.stopping) throw new Error(`hollow node ${this.name} is stopping`);
  }

  /**
   * One Lease renewal as the kubelet makes it: an update of the Lease it last saw (one request), falling back to
   * NodeHeartbeat's read-then-write when that copy is stale or the Lease is gone.
   */
  private async renewLease(): Promise<void> {
    const api = this.api;
    if (!api || !this.heartbeat) throw new Error(`hollow node ${this.name} has no API client`);
    try {
      if (this.lease) {
        try {
          const spec = { ...this.lease.spec, renewTime: microTimestamp(this.c.clock.now()), leaseDurationSeconds: this.c.leaseDurationSeconds };
          this.lease = await api.put<Lease>(`${LEASES_PATH}/${this.name}`, { ...this.lease, spec });
        } catch (e) {
          if (!isApiError(e, 409) && !isApiError(e, 404)) throw e;
          this.lease = undefined;
        }
      }
      this.lease ??= await this.heartbeat.renewLease();
      this.leaseRenewals++;
      this.lastLeaseError = undefined;
    } catch (e) {
      this.leaseFailures++;
      this.lastLeaseError = (e as Error).message;
      throw e;
    }
  }

  status(): HollowNodeStatus {
    return {
      name: this.name,
      phase: this.phase,
      ...(this.error ? { error: this.error } : {}),
      ...(this.joinMs !== undefined ? { joinMs: this.joinMs, steps: { ...this.steps } } : {}),
      tunnelConnected: this.tunnel?.connected ?? false,
      leaseRenewals: this.leaseRenewals,
      leaseFailures: this.leaseFailures,
      ...(this.lastLeaseError ? { lastLeaseError: this.lastLeaseError } : {}),
      ...(this.client ? { clientIssuer: authorityKeyIdOf(this.client.leaf) } : {}),
      ...(this.serving ? { servingIssuer: authorityKeyIdOf(this.serving.leaf) } : {}),
      trust: { ...this.follower.stats, following: this.follower.following, bundleDigest: this.bundle.digest },
    };
  }

  /** Closes its API connections (which ends a join in progress), then its tunnel and its endpoint. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.halt(new Error(`hollow node ${this.name} is stopping`));
      this.follower.stop();
      this.leaveWheel?.();
      for (const api of this.apis) api.close();
      await this.joining?.catch(() => undefined);
      if (this.phase !== 'failed') this.phase = 'stopped';
      await this.tunnel?.close();
      await this.endpoint?.close();
    })();
    return this.stopping;
  }
}
