// `trustplane store member`: runs one member of a real etcd cluster and keeps its certificates current, as spiffe-helper
// does for SPIRE workloads and locksmith did for CoreOS reboots.
//
// - The member's certificates come from the cluster's etcd CAs. When a CA rotation activates a new generation (or a
//   certificate has a third of its life left), they are re-issued and the files replaced: etcd reads its certificate and
//   key on every handshake, so that needs no restart. While the old generation is still trusted the new certificate
//   carries the cross-certificate, so members and clients that trust only the old generation verify it.
// - etcd reads its trusted CA files only when it starts. When a rotation changes the trust bundle, the supervisor
//   rewrites the files and restarts its etcd, one member of the cluster at a time: it takes a lock held on a lease in
//   the cluster's own store, restarts only when every member answers, and lets go once its member serves reads again.
//   etcd hands leadership over when it stops (SIGTERM), and the cluster keeps its quorum throughout.
// - It reports, through the store, which generations its member serves from and trusts; the control plane completes a
//   rotation once every member has moved (`memberLaggards`).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { CaClient } from '../ca/client.js';
import { localCredential, type LocalCredential } from '../ca/credential.js';
import type { ClusterView } from '../ca/service.js';
import { ETCD_AUTHORITIES, MEMBER_REPORTS, MEMBER_RESTART_LOCK, type EtcdAuthority, type MemberReport } from '../fleet/etcd-members.js';
import { activeGenerationOf, generationOf, generationOfPem, generationsInBundle } from '../fleet/generations.js';
import { SIGNER_ETCD_CLIENT, SIGNER_ETCD_PEER, SIGNER_ETCD_SERVER, parseCertificates } from '../pki/index.js';
import { invalid } from '../util/errors.js';
import { writeFileAtomic } from '../util/files.js';
import type { Logger } from '../util/log.js';
import { claimPidFile, isProcessRunning } from '../util/pidfile.js';
import { waitFor } from '../util/wait.js';
import { openStore, type Store } from './client.js';

export interface MemberFiles {
  'etcd-api-ca.crt': string;
  'etcd-peer-ca.crt': string;
  server: { cert: string; key: string };
  peer: { cert: string; key: string };
}

/** Where a member's certificate files live in `dir` (the names `store member-certs` writes). */
export function memberFiles(dir: string, member: string): MemberFiles {
  return {
    'etcd-api-ca.crt': join(dir, 'etcd-api-ca.crt'),
    'etcd-peer-ca.crt': join(dir, 'etcd-peer-ca.crt'),
    server: { cert: join(dir, `server-${member}.crt`), key: join(dir, `server-${member}.key`) },
    peer: { cert: join(dir, `peer-${member}.crt`), key: join(dir, `peer-${member}.key`) },
  };
}

/** The etcd flags that use a member's files: client and peer TLS, with client certificates required on both. */
export function etcdTlsFlags(f: MemberFiles): string[] {
  return [
    `--cert-file=${f.server.cert}`,
    `--key-file=${f.server.key}`,
    '--client-cert-auth',
    `--trusted-ca-file=${f['etcd-api-ca.crt']}`,
    `--peer-cert-file=${f.peer.cert}`,
    `--peer-key-file=${f.peer.key}`,
    '--peer-client-cert-auth',
    `--peer-trusted-ca-file=${f['etcd-peer-ca.crt']}`,
  ];
}

/** The flags `etcdTlsFlags` sets, refused on a supervised member's command line. */
const MANAGED_FLAGS = ['--cert-file', '--key-file', '--trusted-ca-file', '--client-cert-auth', '--peer-cert-file', '--peer-key-file', '--peer-trusted-ca-file', '--peer-client-cert-auth', '--auto-tls', '--peer-auto-tls'];

const SIGNERS: Record<EtcdAuthority, string> = { 'etcd-api': SIGNER_ETCD_SERVER, 'etcd-peer': SIGNER_ETCD_PEER };
const CA_FILE: Record<EtcdAuthority, keyof MemberFiles & `${string}.crt`> = { 'etcd-api': 'etcd-api-ca.crt', 'etcd-peer': 'etcd-peer-ca.crt' };
const LEAF: Record<EtcdAuthority, 'server' | 'peer'> = { 'etcd-api': 'server', 'etcd-peer': 'peer' };

const authority = (view: ClusterView, kind: EtcdAuthority) => view.authorities.find((a) => a.kind === kind)!;
const activeOf = (view: ClusterView, kind: EtcdAuthority) => activeGenerationOf(view, kind) ?? 0;

/** Whether a certificate file is missing, from another generation than `gen`, or past two thirds of its life. */
function needsIssue(view: ClusterView, kind: EtcdAuthority, path: string, gen: number, now: Date): boolean {
  if (!existsSync(path)) return true;
  const [leaf] = parseCertificates(readFileSync(path, 'utf8'));
  if (!leaf || generationOf(view, leaf, kind) !== gen) return true;
  const life = leaf.notAfter.getTime() - leaf.notBefore.getTime();
  return leaf.notAfter.getTime() - now.getTime() < life / 3;
}

/** Issues a member's certificate for one etcd authority from its active generation and writes it (key first). */
async function issueLeaf(ca: Pick<CaClient, 'sign'>, cluster: string, member: string, kind: EtcdAuthority, sans: { ip: string[]; dns: string[] }, files: MemberFiles): Promise<LocalCredential> {
  const cred = await localCredential([{ type: 'CN', value: member }], (csr) => ca.sign(cluster, { signer: SIGNERS[kind], csr }), { sans });
  // etcd reads the certificate and then the key on each handshake: one handshake in between may fail and be retried.
  writeFileAtomic(files[LEAF[kind]].key, cred.key, 0o600);
  writeFileAtomic(files[LEAF[kind]].cert, cred.cert);
  return cred;
}

/**
 * Brings a member's files up to date with the CA's view: both trust bundles, and certificates from the active
 * generations. Returns the authorities whose files changed.
 */
export async function writeMemberFiles(
  ca: Pick<CaClient, 'sign'>,
  view: ClusterView,
  o: { member: string; dir: string; sans: { ip: string[]; dns: string[] }; now: Date; force?: boolean },
): Promise<{ files: MemberFiles; reissued: EtcdAuthority[]; trustChanged: EtcdAuthority[] }> {
  mkdirSync(o.dir, { recursive: true, mode: 0o700 });
  const files = memberFiles(o.dir, o.member);
  const reissued: EtcdAuthority[] = [];
  const trustChanged: EtcdAuthority[] = [];
  for (const kind of ETCD_AUTHORITIES) {
    const bundle = authority(view, kind).bundle;
    const caFile = files[CA_FILE[kind]];
    if (!existsSync(caFile) || readFileSync(caFile, 'utf8') !== bundle) {
      writeFileAtomic(caFile, bundle);
      trustChanged.push(kind);
    }
    if (o.force || needsIssue(view, kind, files[LEAF[kind]].cert, activeOf(view, kind), o.now)) {
      await issueLeaf(ca, view.name, o.member, kind, o.sans, files);
      reissued.push(kind);
    }
  }
  return { files, reissued, trustChanged };
}

export interface MemberSupervisorOptions {
  cluster: string;
  member: string;
  /** Directory of the member's certificate files. */
  dir: string;
  sans: { ip: string[]; dns: string[] };
  ca: Pick<CaClient, 'describeCluster' | 'sign'>;
  /** The cluster's etcd client URLs: for the restart lock and the report. */
  endpoints: string[];
  /** etcd and its flags, without the TLS flags (the supervisor adds them). */
  etcd: { bin: string; args: string[] };
  syncIntervalMs: number;
  log: Logger;
  /** How long etcd has to stop on SIGTERM before SIGKILL. */
  stopTimeoutMs?: number;
  /** How long a restarted member has to serve reads again. */
  restartTimeoutMs?: number;
}

const LOCK_TTL_S = 10;

/** The running etcd, as etcd.json records it: a supervisor killed with -9 leaves it running, and the next one takes it over. */
interface EtcdState {
  pid: number;
  startedAt: string;
  /** The trust bundles it loaded when it started. */
  loaded: Record<EtcdAuthority, string>;
  /** Set just before it is stopped for a restart: a supervisor killed then leaves the restart for the next to finish. */
  restarting?: boolean;
}

interface EtcdProcess {
  pid: number;
  kill(signal: NodeJS.Signals): void;
  /** Resolves with the exit code once it has exited. */
  exited: Promise<number>;
}

/** An etcd this supervisor did not spawn (a killed one did): signalled by PID, its exit seen by polling. */
function adopt(pid: number): EtcdProcess {
  return {
    pid,
    kill: (signal) => {
      try {
        process.kill(pid, signal);
      } catch {
        /* already gone */
      }
    },
    exited: new Promise((resolve) => {
      const t = setInterval(() => {
        if (isProcessRunning(pid)) return;
        clearInterval(t);
        resolve(1);
      }, 200);
    }),
  };
}

/** A flag's value from an etcd command line (`--flag=v` or `--flag v`). */
function flagValue(args: string[], flag: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === flag) return args[i + 1];
    if (args[i].startsWith(`${flag}=`)) return args[i].slice(flag.length + 1);
  }
  return undefined;
}

/** Checks a supervised etcd command line; returns this member's client URL. */
export function checkEtcdArgs(args: string[]): string {
  for (const a of args) {
    const flag = a.split('=')[0];
    if (MANAGED_FLAGS.includes(flag)) throw invalid(`etcd flag ${flag} is set by \`trustplane store member\``, 'drop it from the etcd command line: the member\'s TLS files and flags are managed');
  }
  const urls = flagValue(args, '--advertise-client-urls') ?? flagValue(args, '--listen-client-urls');
  const url = urls?.split(',')[0];
  if (!url) throw invalid('the etcd command line has no --advertise-client-urls', 'pass the member\'s client URL, e.g. --advertise-client-urls=https://10.0.0.1:2379');
  if (!url.startsWith('https://')) throw invalid(`the member's client URL ${url} is not https`, 'trustplane talks to etcd only over TLS with client certificates');
  return url;
}

export class MemberSupervisor {
  private etcd: EtcdProcess | undefined;
  private releasePid: (() => void) | undefined;
  private restarting = false;
  private stopping = false;
  private timer: NodeJS.Timeout | undefined;
  private store: Store | undefined;
  private own: Store | undefined;
  private clientCred: { gen: number; cred: LocalCredential } | undefined;
  /** The trust bundles the running etcd loaded when it started. */
  private loaded: Record<EtcdAuthority, string> = { 'etcd-api': '', 'etcd-peer': '' };
  private startedAt = '';
  private lastReport = '';
  private files!: MemberFiles;
  private readonly clientUrl: string;
  private exitResolve!: (code: number) => void;
  /** Resolves with etcd's exit code when it exits by itself (not for a restart), or 0 after stop(). */
  readonly done: Promise<number> = new Promise((r) => (this.exitResolve = r));

  constructor(private readonly o: MemberSupervisorOptions) {
    this.clientUrl = checkEtcdArgs(o.etcd.args);
  }

  /**
   * Writes the member's files from the CA's current view and starts etcd, or takes over the etcd a killed supervisor
   * left running (recorded in etcd.json, and checked by its command line); keeps them current from then on.
   */
  async start(): Promise<void> {
    mkdirSync(this.o.dir, { recursive: true, mode: 0o700 });
    this.releasePid = claimPidFile(join(this.o.dir, 'store-member.pid'), `trustplane store member ${this.o.member}`);
    this.files = memberFiles(this.o.dir, this.o.member);
    try {
      const view = await this.o.ca.describeCluster(this.o.cluster);
      await writeMemberFiles(this.o.ca, view, { member: this.o.member, dir: this.o.dir, sans: this.o.sans, now: new Date() });
    } catch (e) {
      // etcd does not wait for the control plane: with the files of an earlier start it runs, and they are brought up
      // to date once the CA service answers.
      const f = this.files;
      if (![f['etcd-api-ca.crt'], f['etcd-peer-ca.crt'], f.server.cert, f.server.key, f.peer.cert, f.peer.key].every((p) => existsSync(p))) throw e;
      this.o.log.warn({ member: this.o.member, err: (e as Error).message }, 'the CA service does not answer: starting etcd on the certificate files it has');
    }
    const left = this.leftRunning();
    if (left?.restarting) {
      // Killed between stopping etcd and starting it again: finish that restart.
      this.o.log.info({ member: this.o.member, pid: left.pid }, 'finishing the restart of etcd a previous `store member` began');
      this.etcd = adopt(left.pid);
      await this.stopEtcd();
      this.spawnEtcd();
    } else if (left) {
      this.watch(adopt(left.pid));
      this.loaded = left.loaded;
      this.startedAt = left.startedAt;
      this.o.log.info({ member: this.o.member, pid: left.pid }, 'took over the etcd a previous `store member` left running');
    } else this.spawnEtcd();
    this.schedule(0);
  }

  private get statePath(): string {
    return join(this.o.dir, 'etcd.json');
  }

  /** The etcd recorded in etcd.json, if it still runs (its command line names this member's certificate file). */
  private leftRunning(): EtcdState | undefined {
    if (!existsSync(this.statePath)) return undefined;
    const st = JSON.parse(readFileSync(this.statePath, 'utf8')) as EtcdState;
    if (!isProcessRunning(st.pid)) return undefined;
    try {
      const cmdline = readFileSync(`/proc/${st.pid}/cmdline`, 'utf8').split('\0');
      return cmdline.includes(`--cert-file=${this.files.server.cert}`) ? st : undefined;
    } catch {
      return undefined;
    }
  }

  private schedule(ms: number): void {
    if (this.stopping) return;
    this.timer = setTimeout(() => {
      this.sync()
        .catch((e: Error) => this.o.log.warn({ member: this.o.member, err: e.message }, 'keeping the member current failed; retrying'))
        .finally(() => this.schedule(this.o.syncIntervalMs));
    }, ms);
  }

  private spawnEtcd(): void {
    for (const kind of ETCD_AUTHORITIES) this.loaded[kind] = readFileSync(this.files[CA_FILE[kind]], 'utf8');
    const child = spawn(this.o.etcd.bin, [...this.o.etcd.args, ...etcdTlsFlags(this.files)], { stdio: ['ignore', 'inherit', 'inherit'] });
    const exited = new Promise<number>((resolve) => {
      child.once('error', (e) => {
        this.o.log.error({ member: this.o.member, err: e.message }, `could not run ${this.o.etcd.bin}`);
        resolve(127);
      });
      child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
    });
    this.startedAt = new Date().toISOString();
    this.watch({ pid: child.pid ?? 0, kill: (sig) => child.kill(sig), exited });
    if (child.pid) writeFileAtomic(this.statePath, JSON.stringify({ pid: child.pid, startedAt: this.startedAt, loaded: this.loaded } satisfies EtcdState), 0o600);
    this.o.log.info({ member: this.o.member, pid: child.pid, clientUrl: this.clientUrl }, 'etcd started');
  }

  private recordRestart(): void {
    if (!existsSync(this.statePath)) return;
    const st = JSON.parse(readFileSync(this.statePath, 'utf8')) as EtcdState;
    writeFileAtomic(this.statePath, JSON.stringify({ ...st, restarting: true } satisfies EtcdState), 0o600);
  }

  /** etcd exiting by itself (not stopped for a restart or by stop()) ends the supervisor with its exit code. */
  private watch(p: EtcdProcess): void {
    this.etcd = p;
    void p.exited.then((code) => {
      if (this.etcd !== p || this.restarting || this.stopping) return;
      this.o.log.error({ member: this.o.member, code }, 'etcd exited');
      void this.stop().then(() => this.exitResolve(code || 1));
    });
  }

  private async stopEtcd(): Promise<void> {
    const p = this.etcd;
    if (!p) return;
    p.kill('SIGTERM');
    const killer = setTimeout(() => p.kill('SIGKILL'), this.o.stopTimeoutMs ?? 20_000);
    await p.exited;
    clearTimeout(killer);
    rmSync(this.statePath, { force: true });
  }

  /** The supervisor's own etcd client credential, from the etcd API CA's active generation. */
  private async clientTls(view: ClusterView) {
    const gen = activeOf(view, 'etcd-api');
    if (this.clientCred?.gen !== gen) {
      const cred = await localCredential([{ type: 'CN', value: `system:trustplane:member:${this.o.member}` }], (csr) => this.o.ca.sign(this.o.cluster, { signer: SIGNER_ETCD_CLIENT, csr }));
      this.clientCred = { gen, cred };
    }
    return { ca: authority(view, 'etcd-api').bundle, cert: this.clientCred.cred.cert, key: this.clientCred.cred.key };
  }

  private async stores(view: ClusterView): Promise<{ store: Store; own: Store }> {
    const tls = await this.clientTls(view);
    if (!this.store) this.store = await openStore({ endpoints: this.o.endpoints, tls, timeoutMs: 5000 });
    if (!this.own) this.own = await openStore({ endpoints: [this.clientUrl], tls, timeoutMs: 5000 });
    this.store.setTls(tls);
    this.own.setTls(tls);
    return { store: this.store, own: this.own };
  }

  /** One look: files current, a restart when the trust changed, the report. */
  private async sync(): Promise<void> {
    const view = await this.o.ca.describeCluster(this.o.cluster);
    const { reissued } = await writeMemberFiles(this.o.ca, view, { member: this.o.member, dir: this.o.dir, sans: this.o.sans, now: new Date() });
    if (reissued.length) this.o.log.info({ member: this.o.member, authorities: reissued }, 'member certificates re-issued (etcd reloads them on its next handshake)');
    const { store, own } = await this.stores(view);
    const stale = ETCD_AUTHORITIES.filter((k) => readFileSync(this.files[CA_FILE[k]], 'utf8') !== this.loaded[k]);
    if (stale.length) await this.rollingRestart(store, own, stale);
    await this.report(view, store, own);
  }

  private async report(view: ClusterView, store: Store, own: Store): Promise<void> {
    const [status] = await own.status();
    if (status.error || !status.memberId) return;
    const r: MemberReport = {
      member: this.o.member,
      memberId: status.memberId,
      clientUrl: this.clientUrl,
      pid: this.etcd?.pid ?? 0,
      startedAt: this.startedAt,
      certificates: {
        'etcd-api': generationOfPem(view, readFileSync(this.files.server.cert, 'utf8'), 'etcd-api'),
        'etcd-peer': generationOfPem(view, readFileSync(this.files.peer.cert, 'utf8'), 'etcd-peer'),
      },
      trusts: { 'etcd-api': generationsInBundle(view, this.loaded['etcd-api'], 'etcd-api'), 'etcd-peer': generationsInBundle(view, this.loaded['etcd-peer'], 'etcd-peer') },
    };
    const json = JSON.stringify(r);
    if (json === this.lastReport) return;
    await store.put(MEMBER_REPORTS + this.o.member, json);
    this.lastReport = json;
    this.o.log.info({ member: this.o.member, certificates: r.certificates, trusts: r.trusts }, 'member reported');
  }

  /** Restarts etcd on its new trust files, one member of the cluster at a time and only when every member answers. */
  private async rollingRestart(store: Store, own: Store, stale: EtcdAuthority[]): Promise<void> {
    const lease = await store.grantLease(LOCK_TTL_S);
    const keeper = await store.keepAlive(lease.id);
    try {
      if (!(await store.createIfAbsent(MEMBER_RESTART_LOCK, this.o.member, { lease: lease.id }))) {
        const holder = (await store.get(MEMBER_RESTART_LOCK))?.value.toString();
        this.o.log.info({ member: this.o.member, holder }, 'trust changed: waiting for another member to finish restarting');
        return; // the next look tries again
      }
      const down = (await store.status()).filter((s) => s.error);
      if (down.length) {
        this.o.log.warn({ member: this.o.member, notAnswering: down.map((s) => s.endpoint) }, 'trust changed, but not every member answers: the restart waits (the cluster would lose its quorum)');
        return;
      }
      this.o.log.info({ member: this.o.member, authorities: stale }, 'trust changed: restarting etcd on the new trusted CA files');
      this.restarting = true;
      try {
        this.recordRestart();
        await this.stopEtcd();
        if (this.stopping) return;
        this.spawnEtcd();
      } finally {
        this.restarting = false;
      }
      // Serving linearizable reads again means the member has rejoined the cluster.
      await waitFor(`member ${this.o.member} to serve again after its restart`, async () => ((await own.get(MEMBER_RESTART_LOCK)) ? true : undefined), this.o.restartTimeoutMs ?? 60_000, 250);
      this.o.log.info({ member: this.o.member }, 'etcd restarted and serving');
    } finally {
      await keeper.stop();
      await store.revokeLease(lease.id).catch(() => undefined); // deletes the lock with it
    }
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    await this.stopEtcd();
    await Promise.all([this.store?.close(), this.own?.close()]);
    this.releasePid?.();
    this.exitResolve(0);
  }
}
