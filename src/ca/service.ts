// The CA service core: per-cluster authorities in a KeyStore, signer policy, generations, audit. Transport-free.
import { randomUUID } from 'node:crypto';
import type { KeyStore } from '../keystore/keystore.js';
import type { KeyAlgorithm, Name, ParsedCsr, Signer } from '../pki/types.js';
import { SIGNER_APISERVER_SERVING, buildCertificate, crossSign, formatName, parseCertificate, parseCsr, parseCsrAsync, pemEncode, selfSignedCa, serviceSignerName } from '../pki/index.js';
import type { Clock } from '../util/clock.js';
import { TrustplaneError, forbidden, invalid, notFound, conflict } from '../util/errors.js';
import { Mutex } from '../util/mutex.js';
import { AUTHORITY_KINDS, activeGeneration, authorityTitle, bundlePem, isAuthorityKind, trustedGenerations, type Authority, type AuthorityKind, type Generation } from './authority.js';
import type { AuditLog } from './audit.js';
import { BACKDATE_MS, decide, findProfile, type Caller } from './profiles.js';
import type { CaStateFile, ClusterRecord } from './state.js';
import type { CsrPool } from './csr-pool.js';

const YEAR_S = 365 * 86400;

export const DEFAULT_LIFETIMES: Record<AuthorityKind, number> = {
  root: 10 * YEAR_S,
  'etcd-api': 5 * YEAR_S,
  'etcd-peer': 5 * YEAR_S,
};
export const SERVICE_CA_LIFETIME_S = 10 * YEAR_S;
export const CALLER_LIFETIME_S = YEAR_S;

const CLUSTER_NAME = /^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$/;

export interface CreateClusterOptions {
  keyAlgorithm?: KeyAlgorithm;
  lifetimes?: Partial<Record<AuthorityKind, number>>;
}

export interface IssuedCertificate {
  certificate: string; // PEM, leaf
  /** Intermediates to serve after the leaf (the cross-certificate while an older generation is still trusted). */
  chain: string[];
  serial: string;
  sha256: string;
  notAfter: string;
  authority: AuthorityKind | 'service';
  generation: number;
}

export interface SignInput {
  signer: string;
  csr: string | Buffer;
  expirationSeconds?: number;
  admin?: boolean;
  /** Who asked the caller for this (e.g. the Kubernetes user behind a CSR), for the audit log. */
  onBehalfOf?: string;
  /** spec.usages of the CSR: checked against the signer's table and issued exactly; absent, the profile's own. */
  usages?: string[];
}

export interface AuthorityView {
  kind: AuthorityKind;
  title: string;
  bundle: string;
  generations: Array<Omit<Generation, 'keyId'> & { hasKey: boolean }>;
}

export interface ClusterView {
  name: string;
  uid: string;
  createdAt: string;
  state: ClusterRecord['state'];
  authorities: AuthorityView[];
}

interface IssuerContext {
  subject: Name;
  publicKey: Buffer;
  signer: Signer;
  notAfter: Date;
  generation: number;
  chain: string[];
}

/** What a caller's certificate says about it, checked by the transport before the service sees it. */
export interface CallerIdentity extends Caller {
  clusterUid?: string;
}

export class CaService {
  private readonly lock = new Mutex();
  private readonly issuers = new Map<string, IssuerContext>();

  constructor(
    private readonly keys: KeyStore,
    private readonly state: CaStateFile,
    private readonly audit: AuditLog,
    private readonly clock: Clock,
    private readonly csrPool?: CsrPool,
  ) {}

  // ---- the service's own authority (callers' credentials and the API's TLS) ----

  /** Create the service CA on first start; finish any half-done cluster operation left by a crash. */
  async init(): Promise<void> {
    await this.lock.run(async () => {
      if (!this.state.data.service) {
        const label = `service/ca/${randomUUID()}`;
        const info = await this.keys.generate(label, { kind: 'ec', curve: 'P-256' });
        const signer = await this.keys.signer(info.id);
        const now = this.clock.now().getTime();
        const der = await selfSignedCa({
          subject: [{ type: 'O', value: 'trustplane' }, { type: 'CN', value: 'trustplane CA service' }],
          notBefore: new Date(now - BACKDATE_MS),
          notAfter: new Date(now + SERVICE_CA_LIFETIME_S * 1000),
          pathLen: 0,
          signer,
        });
        this.state.data.service = { keyId: info.id, keyLabel: label, certificate: pemEncode('CERTIFICATE', der) };
        this.state.save();
      }
    });
    for (const c of Object.values(this.state.data.clusters)) {
      if (c.state === 'creating') await this.finishCreate(c);
      else if (c.state === 'deleting') await this.finishDelete(c);
      else for (const kind of AUTHORITY_KINDS) await this.finishRetirements(c, kind);
    }
  }

  serviceCaPem(): string {
    const s = this.state.data.service;
    if (!s) throw new TrustplaneError('Internal', 'CA service is not initialised');
    return s.certificate;
  }

  /**
   * Certify a caller's key (proved by its CSR) as a fleet or cluster caller. The subject comes from the role, never
   * from the CSR. Used for the API's TLS server certificate as well (role 'server').
   */
  async issueServiceCertificate(
    csrInput: string | Buffer,
    who: { role: 'fleet'; name: string } | { role: 'cluster'; cluster: string } | { role: 'server'; dns: string[]; ip: string[] },
    requester: string,
    lifetimeSeconds = CALLER_LIFETIME_S,
  ): Promise<IssuedCertificate> {
    const s = this.state.data.service;
    if (!s) throw new TrustplaneError('Internal', 'CA service is not initialised');
    const csr = this.parseOrAudit(csrInput, { op: 'issue-caller', requester });
    let subject: Name;
    let cluster: string | undefined;
    if (who.role === 'fleet') subject = [{ type: 'O', value: 'trustplane:fleet' }, { type: 'CN', value: `fleet:${who.name}` }];
    else if (who.role === 'cluster') {
      const c = this.readyCluster(who.cluster, requester, 'issue-caller');
      cluster = c.name;
      subject = [{ type: 'O', value: 'trustplane:cluster' }, { type: 'OU', value: c.uid }, { type: 'CN', value: `cluster:${c.name}` }];
    } else subject = [{ type: 'O', value: 'trustplane' }, { type: 'CN', value: 'trustplane CA service' }];
    const issuer = await this.issuerFor('service', undefined);
    const now = this.clock.now().getTime();
    const der = await buildCertificate(
      {
        subject,
        notBefore: new Date(now - BACKDATE_MS),
        notAfter: new Date(Math.min(now + lifetimeSeconds * 1000, issuer.notAfter.getTime())),
        publicKey: csr.publicKey,
        isCA: false,
        keyUsage: ['digitalSignature'],
        extKeyUsage: who.role === 'server' ? ['serverAuth'] : ['clientAuth'],
        sans: who.role === 'server' ? { dns: who.dns, ip: who.ip } : undefined,
      },
      issuer,
    );
    return this.recordIssued(der, issuer, 'service', { op: 'issue-caller', requester, cluster, signer: serviceSignerName(who.role) });
  }

  // ---- clusters ----

  async createCluster(name: string, opts: CreateClusterOptions, requester: string): Promise<ClusterView> {
    if (!CLUSTER_NAME.test(name))
      throw invalid(`cluster name "${name}" is not valid`, 'use 1-40 lower-case letters, digits and dashes, starting with a letter');
    const algorithm = opts.keyAlgorithm ?? { kind: 'ec', curve: 'P-256' };
    const lifetimes = { ...DEFAULT_LIFETIMES, ...(opts.lifetimes ?? {}) };
    for (const [k, v] of Object.entries(lifetimes)) {
      if (!Number.isInteger(v) || v < 3600) throw invalid(`lifetime of the ${k} authority must be a whole number of seconds, at least 3600 (got ${v})`);
    }
    const record = await this.lock.run(async () => {
      const existing = this.state.data.clusters[name];
      if (existing && existing.state !== 'creating') {
        this.audit.record({ decision: 'deny', op: 'create-cluster', requester, cluster: name, reason: 'cluster exists' });
        throw new TrustplaneError('AlreadyExists', `cluster "${name}" already exists in the CA service`);
      }
      if (existing) return existing;
      const uid = randomUUID();
      const authorities = Object.fromEntries(
        AUTHORITY_KINDS.map((kind) => [kind, { kind, generations: [{ generation: 1, state: 'preparing', keyLabel: `cluster/${name}/${uid}/${kind}/g1` }] }]),
      ) as Record<AuthorityKind, Authority>;
      const rec: ClusterRecord = { name, uid, createdAt: this.clock.now().toISOString(), state: 'creating', keyAlgorithm: algorithm, lifetimes, authorities };
      this.state.data.clusters[name] = rec;
      this.state.save();
      return rec;
    });
    await this.finishCreate(record);
    this.audit.record({ decision: 'allow', op: 'create-cluster', requester, cluster: name });
    this.audit.flush();
    return this.describe(name);
  }

  private async finishCreate(rec: ClusterRecord): Promise<void> {
    await this.lock.run(async () => {
      for (const kind of AUTHORITY_KINDS) {
        const g = rec.authorities[kind].generations[0];
        if (g.state === 'preparing') await this.materialise(rec, kind, g, undefined);
        if (g.state === 'prepared') g.state = 'active';
      }
      rec.state = 'ready';
      this.state.save();
    });
  }

  /** Give a 'preparing' generation its key and certificates (reusing a key made before a crash), then mark it prepared. */
  private async materialise(rec: ClusterRecord, kind: AuthorityKind, g: Generation, previous: Generation | undefined): Promise<void> {
    const found = (await this.keys.list()).find((k) => k.label === g.keyLabel);
    const info = found ?? (await this.keys.generate(g.keyLabel, rec.keyAlgorithm));
    g.keyId = info.id;
    const signer = await this.keys.signer(info.id);
    const now = this.clock.now().getTime();
    const subject: Name = [
      { type: 'O', value: 'trustplane' },
      { type: 'OU', value: rec.uid },
      { type: 'CN', value: `${rec.name} ${authorityTitle(kind)} g${g.generation}` },
    ];
    const der = await selfSignedCa({
      subject,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + rec.lifetimes[kind] * 1000),
      signer,
    });
    const cert = parseCertificate(der);
    g.certificate = pemEncode('CERTIFICATE', der);
    g.notBefore = cert.notBefore.toISOString();
    g.notAfter = cert.notAfter.toISOString();
    g.sha256 = cert.sha256;
    g.subject = formatName(cert.subject);
    const prevCert = previous?.keyId && previous.certificate ? parseCertificate(previous.certificate) : undefined;
    // An old generation that has already expired vouches for nobody: the new one stands alone, else an expired root
    // could never be replaced (crossSign refuses a certificate ending before it starts) and the cluster would stay DEGRADED.
    if (previous?.keyId && prevCert && prevCert.notAfter.getTime() > cert.notBefore.getTime()) {
      const prevSigner = await this.keys.signer(previous.keyId);
      const cross = await crossSign(cert, { subject: prevCert.subject, publicKey: prevCert.publicKey, signer: prevSigner, notAfter: prevCert.notAfter });
      g.crossCertificate = pemEncode('CERTIFICATE', cross);
    }
    g.state = 'prepared';
    this.state.save();
  }

  async deleteCluster(name: string, requester: string): Promise<void> {
    const rec = await this.lock.run(async () => {
      const r = this.state.data.clusters[name];
      if (!r) {
        this.audit.record({ decision: 'deny', op: 'delete-cluster', requester, cluster: name, reason: 'no such cluster' });
        throw notFound(`cluster "${name}" not found in the CA service`);
      }
      r.state = 'deleting';
      this.state.save();
      return r;
    });
    await this.finishDelete(rec);
    this.audit.record({ decision: 'allow', op: 'delete-cluster', requester, cluster: name, reason: 'keys destroyed' });
    this.audit.flush();
  }

  private async finishDelete(rec: ClusterRecord): Promise<void> {
    await this.lock.run(async () => {
      const labels = new Set<string>();
      for (const kind of AUTHORITY_KINDS) for (const g of rec.authorities[kind].generations) labels.add(g.keyLabel);
      for (const k of await this.keys.list()) if (labels.has(k.label)) await this.keys.destroy(k.id);
      for (const k of this.issuers.keys()) if (k.startsWith(`${rec.name}/`)) this.issuers.delete(k);
      delete this.state.data.clusters[rec.name];
      this.state.save();
    });
  }

  listClusters(): ClusterView[] {
    return Object.keys(this.state.data.clusters)
      .sort()
      .map((n) => this.describe(n));
  }

  describe(name: string): ClusterView {
    const rec = this.state.data.clusters[name];
    if (!rec) throw notFound(`cluster "${name}" not found in the CA service`);
    return {
      name: rec.name,
      uid: rec.uid,
      createdAt: rec.createdAt,
      state: rec.state,
      authorities: AUTHORITY_KINDS.map((kind) => {
        const a = rec.authorities[kind];
        return {
          kind,
          title: authorityTitle(kind),
          bundle: bundlePem(a),
          generations: a.generations.map(({ keyId, ...g }) => ({ ...g, hasKey: keyId !== undefined })),
        };
      }),
    };
  }

  /** Callers of a cluster may read only their own cluster. */
  describeFor(caller: CallerIdentity, name: string): ClusterView {
    if (caller.role === 'cluster') this.checkBinding(caller, name, 'read-bundle');
    return this.describe(name);
  }

  // ---- generations ----

  async prepareGeneration(name: string, kind: AuthorityKind, requester: string): Promise<ClusterView> {
    const rec = this.readyCluster(name, requester, 'prepare-generation');
    await this.lock.run(async () => {
      const a = rec.authorities[kind];
      let g = a.generations.find((x) => x.state === 'preparing' || x.state === 'prepared');
      if (!g) {
        const n = Math.max(...a.generations.map((x) => x.generation)) + 1;
        g = { generation: n, state: 'preparing', keyLabel: `cluster/${name}/${rec.uid}/${kind}/g${n}` };
        a.generations.push(g);
        this.state.save();
      }
      if (g.state === 'preparing') await this.materialise(rec, kind, g, activeGeneration(a));
    });
    this.audit.record({ decision: 'allow', op: 'prepare-generation', requester, cluster: name, authority: kind });
    return this.describe(name);
  }

  async activateGeneration(name: string, kind: AuthorityKind, generation: number, requester: string): Promise<ClusterView> {
    const rec = this.readyCluster(name, requester, 'activate-generation');
    await this.lock.run(async () => {
      const a = rec.authorities[kind];
      const g = a.generations.find((x) => x.generation === generation);
      if (!g) throw notFound(`${authorityTitle(kind)} of cluster "${name}" has no generation ${generation}`);
      if (g.state === 'active') return;
      if (g.state !== 'prepared') throw conflict(`generation ${generation} is ${g.state}; only a prepared generation can be activated`);
      for (const x of a.generations) if (x.state === 'active') x.state = 'previous';
      g.state = 'active';
      this.issuers.delete(`${name}/${kind}`);
      this.state.save();
    });
    this.audit.record({ decision: 'allow', op: 'activate-generation', requester, cluster: name, authority: kind, generation });
    return this.describe(name);
  }

  /** Remove a previous generation from the bundle and destroy its key. */
  async retireGeneration(name: string, kind: AuthorityKind, generation: number, requester: string): Promise<ClusterView> {
    const rec = this.readyCluster(name, requester, 'retire-generation');
    await this.lock.run(async () => {
      const g = rec.authorities[kind].generations.find((x) => x.generation === generation);
      if (!g) throw notFound(`${authorityTitle(kind)} of cluster "${name}" has no generation ${generation}`);
      if (g.state === 'retired') return;
      if (g.state !== 'previous') throw conflict(`generation ${generation} is ${g.state}; only a previous generation can be retired`);
      g.state = 'retired';
      this.issuers.delete(`${name}/${kind}`);
      this.state.save();
    });
    await this.finishRetirements(rec, kind);
    this.audit.record({ decision: 'allow', op: 'retire-generation', requester, cluster: name, authority: kind, generation, reason: 'key destroyed' });
    return this.describe(name);
  }

  private async finishRetirements(rec: ClusterRecord, kind: AuthorityKind): Promise<void> {
    await this.lock.run(async () => {
      for (const g of rec.authorities[kind].generations) {
        if (g.state !== 'retired' || g.keyId === undefined) continue;
        try {
          await this.keys.destroy(g.keyId);
        } catch (e) {
          if (!(e instanceof TrustplaneError && e.reason === 'NotFound')) throw e;
        }
        delete g.keyId;
        this.state.save();
      }
    });
  }

  // ---- signing ----

  async sign(caller: CallerIdentity, cluster: string, input: SignInput): Promise<IssuedCertificate> {
    const [r] = await this.signMany(caller, cluster, [input]);
    if (r instanceof Error) throw r;
    return r;
  }

  /**
   * Sign many requests for one cluster; each result is a certificate or the error that refused it. CSRs are parsed
   * and verified on the worker pool when there is one, so this thread does policy, building and signing.
   */
  async signMany(caller: CallerIdentity, cluster: string, inputs: SignInput[]): Promise<Array<IssuedCertificate | TrustplaneError>> {
    const parsed: Array<ParsedCsr | TrustplaneError> = this.csrPool
      ? await this.csrPool.parseMany(inputs.map((i) => i.csr))
      : await Promise.all(
          inputs.map(async (i) => {
            try {
              return await parseCsrAsync(i.csr);
            } catch (e) {
              return e instanceof TrustplaneError ? e : invalid(`CSR is not valid: ${(e as Error).message}`);
            }
          }),
        );
    return Promise.all(
      inputs.map(async (input, i) => {
        try {
          return await this.signParsed(caller, cluster, input, parsed[i]);
        } catch (e) {
          if (e instanceof TrustplaneError) return e;
          throw e;
        }
      }),
    );
  }

  private async signParsed(caller: CallerIdentity, cluster: string, input: SignInput, csr: ParsedCsr | TrustplaneError): Promise<IssuedCertificate> {
    const requester = input.onBehalfOf ? `${caller.name} for ${input.onBehalfOf}` : caller.name;
    const base = { op: 'sign', requester, cluster, signer: input.signer };
    const rec = this.readyCluster(cluster, requester, 'sign', input.signer);
    if (caller.role === 'cluster') this.checkBinding(caller, cluster, 'sign', input.signer);
    if (csr instanceof TrustplaneError) {
      this.audit.record({ ...base, decision: 'deny', reason: csr.message });
      throw csr;
    }
    const kind = this.authorityOfSigner(input.signer);
    const issuer = kind ? await this.issuerFor(cluster, kind) : undefined;
    const d = decide(
      caller,
      cluster,
      { signer: input.signer, csr, expirationSeconds: input.expirationSeconds, admin: input.admin, usages: input.usages, reservations: rec.servingReservations },
      issuer?.notAfter ?? new Date(0),
      this.clock.now(),
    );
    if (!d.allow) {
      this.audit.record({ ...base, decision: 'deny', subject: formatName(csr.subject), reason: d.reason });
      throw new TrustplaneError(d.code, `${input.signer || 'an empty signer name'} refused the CSR for cluster "${rec.name}": ${d.reason}`);
    }
    if (d.profile.name === SIGNER_APISERVER_SERVING) this.reserveApiServerNames(rec, d.template.sans);
    const der = await buildCertificate(d.template, issuer!);
    return this.recordIssued(der, issuer!, d.profile.authority, base);
  }

  /**
   * The API server's names and addresses, learnt from the serving certificates the CA issues it: from then on no
   * kubelet serving certificate of the cluster may carry them (profiles.ts reservedServingSan). Recorded before the
   * certificate is built, so none is ever out without its reservation.
   */
  private reserveApiServerNames(rec: ClusterRecord, sans: { dns?: string[]; ip?: string[] } | undefined): void {
    const r = (rec.servingReservations ??= { dns: [], ip: [] });
    const dns = (sans?.dns ?? []).map((d) => d.toLowerCase()).filter((d) => !r.dns.includes(d));
    const ip = (sans?.ip ?? []).filter((a) => !r.ip.includes(a));
    if (dns.length === 0 && ip.length === 0) return;
    r.dns.push(...dns);
    r.ip.push(...ip);
    this.state.save();
  }

  private authorityOfSigner(signer: string): AuthorityKind | undefined {
    // The profile table is the one source; decide() reports an unknown signer itself.
    return findProfile(signer)?.authority;
  }

  private recordIssued(der: Buffer, issuer: IssuerContext, kind: AuthorityKind | 'service', base: { op: string; requester: string; cluster?: string; signer?: string }): IssuedCertificate {
    const cert = parseCertificate(der);
    this.audit.record({ ...base, decision: 'allow', subject: formatName(cert.subject), serial: cert.serialHex, sha256: cert.sha256, authority: kind, generation: issuer.generation });
    return {
      certificate: pemEncode('CERTIFICATE', der),
      chain: issuer.chain,
      serial: cert.serialHex,
      sha256: cert.sha256,
      notAfter: cert.notAfter.toISOString(),
      authority: kind,
      generation: issuer.generation,
    };
  }

  private parseOrAudit(input: string | Buffer, base: { op: string; requester: string; cluster?: string; signer?: string }): ParsedCsr {
    try {
      return parseCsr(input);
    } catch (e) {
      this.audit.record({ ...base, decision: 'deny', reason: (e as Error).message });
      if (e instanceof TrustplaneError) throw e;
      throw invalid(`CSR is not valid: ${(e as Error).message}`);
    }
  }

  private readyCluster(name: string, requester: string, op: string, signer?: string): ClusterRecord {
    const rec = this.state.data.clusters[name];
    if (!rec || rec.state !== 'ready') {
      this.audit.record({ decision: 'deny', op, requester, cluster: name, signer, reason: rec ? `cluster is ${rec.state}` : 'unknown cluster' });
      if (!rec) throw notFound(`cluster "${name}" not found in the CA service`, 'list clusters with `trustplane clusters list`');
      throw conflict(`cluster "${name}" is ${rec.state}`);
    }
    return rec;
  }

  private checkBinding(caller: CallerIdentity, cluster: string, op: string, signer?: string): void {
    const rec = this.state.data.clusters[cluster];
    if (caller.cluster !== cluster || !rec || rec.uid !== caller.clusterUid) {
      const reason = `caller ${caller.name} is bound to cluster "${caller.cluster}" and may not act for cluster "${cluster}"`;
      this.audit.record({ decision: 'deny', op, requester: caller.name, cluster, signer, reason });
      throw forbidden(reason);
    }
  }

  private async issuerFor(cluster: string, kind: AuthorityKind | undefined): Promise<IssuerContext> {
    const cacheKey = `${cluster}/${kind ?? 'service'}`;
    const hit = this.issuers.get(cacheKey);
    if (hit) return hit;
    let keyId: string, certificate: string, generation: number, chain: string[];
    if (kind === undefined) {
      const s = this.state.data.service!;
      ({ keyId, certificate } = s);
      generation = 1;
      chain = [];
    } else {
      const a = this.state.data.clusters[cluster].authorities[kind];
      const g = activeGeneration(a);
      if (!g?.keyId || !g.certificate) throw new TrustplaneError('Unavailable', `${authorityTitle(kind)} of cluster "${cluster}" has no active generation`);
      ({ keyId, certificate, generation } = { keyId: g.keyId, certificate: g.certificate, generation: g.generation });
      // While an older generation is still trusted, serve the cross-certificate so old-bundle peers verify new leaves.
      const olderTrusted = trustedGenerations(a).some((x) => x.generation < g.generation);
      chain = olderTrusted && g.crossCertificate ? [g.crossCertificate] : [];
    }
    const cert = parseCertificate(certificate);
    const ctx: IssuerContext = { subject: cert.subject, publicKey: cert.publicKey, signer: await this.keys.signer(keyId), notAfter: cert.notAfter, generation, chain };
    this.issuers.set(cacheKey, ctx);
    return ctx;
  }
}

export function parseAuthorityKind(v: string): AuthorityKind {
  if (!isAuthorityKind(v)) throw invalid(`unknown authority "${v}"`, `use one of ${AUTHORITY_KINDS.join(', ')}`);
  return v;
}
