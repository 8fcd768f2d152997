// Real etcd 3.4 members on loopback with client and peer TLS, for tests and benchmarks that need the ground truth.
//
//   const cluster = await startEtcdCluster({ members: 3 });          // openssl-made API and peer CAs by default
//   const store = await openStore({ endpoints: cluster.endpoints, tls: cluster.tls });
//   await cluster.killMember(0); await cluster.restartMember(0);     // kill -9 by PID; restart on the same data dir
//   await cluster.stop();                                            // in an after() hook: kills only its own PIDs
//
// Pass `tls: EtcdTlsMaterial` to run the members on certificates from another CA (e.g. trustplane's own).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { makeOpensslCa } from './openssl-certs.js';
import { tempDir } from './tmp.js';
import { stablePort } from '../../src/util/ports.js';

export interface PemKeyPair {
  cert: string;
  key: string;
}

/** All certificates a cluster needs. Tests may pass their own (e.g. from trustplane's CA); `opensslEtcdTls` makes a default set. */
export interface EtcdTlsMaterial {
  /** CA that etcd's client port trusts for client certificates (--trusted-ca-file). */
  apiCa: string;
  /** CA that members trust for each other (--peer-trusted-ca-file). */
  peerCa: string;
  /**
   * Per member: the client-port certificate (serverAuth and clientAuth, since etcd's JSON gateway dials itself;
   * SAN IP:127.0.0.1) and the peer certificate (serverAuth and clientAuth, SAN IP:127.0.0.1).
   */
  members: Array<{ server: PemKeyPair; peer: PemKeyPair }>;
  /** What a client presents (a certificate from apiCa) and the CA it verifies the members' client-port certificates with. */
  client: PemKeyPair & { ca: string };
}

export interface EtcdClusterOptions {
  members?: 1 | 3;
  tls?: EtcdTlsMaterial;
  /** Deadline for the cluster (or a restarted member) to report healthy. */
  startTimeoutMs?: number;
  etcdBin?: string;
  /** Extra flags for every member, e.g. ['--heartbeat-interval=50']. */
  extraArgs?: string[];
  /** Client ports chosen beforehand (e.g. already written into a cluster's configuration), one per member. */
  clientPorts?: number[];
}

export interface EtcdCluster {
  /** https://127.0.0.1:PORT, one per member, in member order. */
  endpoints: string[];
  /** Client material: certificate and key from the API CA, and the CA that verifies the members. */
  tls: { cert: string; key: string; ca: string };
  /** The material the cluster was started with (e.g. to make a client from the peer CA in a refusal test). */
  material: EtcdTlsMaterial;
  dir: string;
  /** PIDs of the members now running. */
  pids(): number[];
  /** kill -9 one member and wait until it has exited. */
  killMember(i: number): Promise<void>;
  /** Start a killed member again on its data dir and ports; resolves once it reports healthy. */
  restartMember(i: number): Promise<void>;
  /** Resolves once member i (or every running member) answers /health with health true. */
  waitHealthy(i?: number, timeoutMs?: number): Promise<void>;
  /** The tail of a member's log, for failure messages. */
  log(i: number): string;
  /** Kill every member this harness started (by PID) and remove the data dir. */
  stop(): Promise<void>;
}

/** A default set of certificates made by openssl: one API CA, one peer CA, and the leaves for `members` members. */
export function opensslEtcdTls(members: number, dir?: string): EtcdTlsMaterial {
  const caDir = (name: string) => {
    if (!dir) return undefined;
    mkdirSync(join(dir, name), { recursive: true, mode: 0o700 });
    return join(dir, name);
  };
  const api = makeOpensslCa('etcd API CA', caDir('api-ca'));
  const peer = makeOpensslCa('etcd peer CA', caDir('peer-ca'));
  const sans = ['IP:127.0.0.1', 'DNS:localhost'];
  const pair = (p: { cert: string; key: string }) => ({ cert: p.cert, key: p.key });
  const ms = Array.from({ length: members }, (_, i) => ({
    server: pair(api.issue(`server-m${i}`, { cn: `etcd-m${i}`, sans, eku: ['serverAuth', 'clientAuth'] })),
    peer: pair(peer.issue(`peer-m${i}`, { cn: `etcd-m${i}`, sans, eku: ['serverAuth', 'clientAuth'] })),
  }));
  const client = pair(api.issue('client', { cn: 'trustplane-test', eku: ['clientAuth'] }));
  return { apiCa: api.cert, peerCa: peer.cert, members: ms, client: { ...client, ca: api.cert } };
}

interface Member {
  name: string;
  clientPort: number;
  peerPort: number;
  args: string[];
  logFile: string;
  child?: ChildProcess;
  exited?: Promise<void>;
}

const HOST = '127.0.0.1';

/** Start a 1- or 3-member TLS cluster on free high ports in a fresh temporary directory. */
export async function startEtcdCluster(o: EtcdClusterOptions = {}): Promise<EtcdCluster> {
  const n = o.members ?? 1;
  // Certificates made here live in their own temporary directory, removed with the cluster.
  const certDir = o.tls ? undefined : tempDir('tp-etcd-certs-');
  const material = o.tls ?? opensslEtcdTls(n, certDir!.path);
  if (material.members.length < n) throw new Error(`etcd harness: ${n} members need ${n} certificate sets, got ${material.members.length}`);
  installExitHook();
  let lastError: unknown;
  // Ports are checked free before use, but another process can take one in between: start over on new ports then.
  for (let attempt = 0; attempt < 3; attempt++) {
    const dir = tempDir('tp-etcd-');
    const cluster = await launch(n, material, dir.path, () => (dir.remove(), certDir?.remove()), o);
    try {
      await cluster.waitHealthy(undefined, o.startTimeoutMs ?? 30_000);
      return cluster;
    } catch (e) {
      lastError = e;
      const portClash = Array.from({ length: n }, (_, i) => cluster.log(i)).some((l) => l.includes('address already in use'));
      await cluster.stop();
      if (!portClash) throw e;
    }
  }
  throw lastError;
}

async function launch(n: number, material: EtcdTlsMaterial, dir: string, removeDir: () => void, o: EtcdClusterOptions): Promise<EtcdCluster> {
  const write = (name: string, pem: string, mode = 0o644) => {
    const p = join(dir, name);
    writeFileSync(p, pem, { mode });
    return p;
  };
  const apiCaFile = write('api-ca.crt', material.apiCa);
  const peerCaFile = write('peer-ca.crt', material.peerCa);
  const ports = await freePorts(2 * n);
  const members: Member[] = [];
  for (let i = 0; i < n; i++) {
    members.push({ name: `m${i}`, clientPort: o.clientPorts?.[i] ?? ports[2 * i], peerPort: ports[2 * i + 1], args: [], logFile: join(dir, `m${i}.log`) });
  }
  const initialCluster = members.map((m) => `${m.name}=https://${HOST}:${m.peerPort}`).join(',');
  const token = `tp-${process.pid}-${Date.now().toString(36)}`;
  members.forEach((m, i) => {
    const cert = material.members[i];
    mkdirSync(join(dir, m.name), { mode: 0o700 });
    m.args = [
      `--name=${m.name}`,
      `--data-dir=${join(dir, m.name, 'data')}`,
      `--listen-client-urls=https://${HOST}:${m.clientPort}`,
      `--advertise-client-urls=https://${HOST}:${m.clientPort}`,
      `--listen-peer-urls=https://${HOST}:${m.peerPort}`,
      `--initial-advertise-peer-urls=https://${HOST}:${m.peerPort}`,
      `--initial-cluster=${initialCluster}`,
      `--initial-cluster-token=${token}`,
      '--initial-cluster-state=new',
      `--cert-file=${write(`server-${m.name}.crt`, cert.server.cert)}`,
      `--key-file=${write(`server-${m.name}.key`, cert.server.key, 0o600)}`,
      '--client-cert-auth',
      `--trusted-ca-file=${apiCaFile}`,
      `--peer-cert-file=${write(`peer-${m.name}.crt`, cert.peer.cert)}`,
      `--peer-key-file=${write(`peer-${m.name}.key`, cert.peer.key, 0o600)}`,
      '--peer-client-cert-auth',
      `--peer-trusted-ca-file=${peerCaFile}`,
      '--auto-compaction-retention=0',
      '--logger=zap',
      '--log-outputs=stderr',
      ...(o.extraArgs ?? []),
    ];
  });
  const bin = o.etcdBin ?? '/usr/bin/etcd';
  const clientTls = material.client;

  const start = (m: Member) => {
    const fd = openSync(m.logFile, 'a');
    const child = spawn(bin, m.args, { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    m.child = child;
    m.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    if (child.pid !== undefined) livePids.add(child.pid);
    child.once('exit', () => child.pid !== undefined && livePids.delete(child.pid));
  };
  const running = (m: Member) => m.child !== undefined && m.child.exitCode === null && m.child.signalCode === null;
  const log = (i: number) => {
    try {
      return readFileSync(members[i].logFile, 'utf8').split('\n').slice(-30).join('\n');
    } catch {
      return '';
    }
  };

  const waitHealthy = async (i?: number, timeoutMs = 30_000) => {
    const targets = i === undefined ? members.filter(running) : [members[i]];
    const deadline = Date.now() + timeoutMs;
    await Promise.all(
      targets.map(async (m) => {
        for (;;) {
          if (!running(m)) throw new Error(`etcd member ${m.name} exited while starting:\n${log(members.indexOf(m))}`);
          if (await healthy(m.clientPort, clientTls)) return;
          if (Date.now() > deadline) throw new Error(`etcd member ${m.name} not healthy within ${timeoutMs} ms:\n${log(members.indexOf(m))}`);
          await pollPause(100);
        }
      }),
    );
  };

  const kill = async (m: Member) => {
    if (!m.child || !running(m)) return;
    m.child.kill('SIGKILL');
    await withDeadline(m.exited!, 10_000, `etcd member ${m.name} (pid ${m.child.pid}) did not exit after SIGKILL`);
  };

  members.forEach(start);
  return {
    endpoints: members.map((m) => `https://${HOST}:${m.clientPort}`),
    tls: { cert: clientTls.cert, key: clientTls.key, ca: clientTls.ca },
    material,
    dir,
    pids: () => members.filter(running).map((m) => m.child!.pid!),
    killMember: (i) => kill(members[i]),
    async restartMember(i) {
      const m = members[i];
      if (running(m)) throw new Error(`etcd member ${m.name} is still running`);
      start(m);
      await waitHealthy(i);
    },
    waitHealthy,
    log,
    async stop() {
      await Promise.all(members.map(kill));
      removeDir();
    },
  };
}

/** GET /health on the client port with the client certificate: etcd answers {"health":"true"} once it has a leader. */
function healthy(port: number, tls: { cert: string; key: string; ca: string }): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(
      { host: HOST, port, path: '/health', method: 'GET', cert: tls.cert, key: tls.key, ca: tls.ca, timeout: 2000, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => {
          try {
            resolve(res.statusCode === 200 && JSON.parse(body).health === 'true');
          } catch {
            resolve(false);
          }
        });
        res.on('error', () => resolve(false));
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

/**
 * `count` distinct ports that are free on loopback now, below the kernel's ephemeral range (random, so concurrent runs
 * rarely collide). Below it, because a member killed and restarted on its ports must find them free: a port in the
 * ephemeral range can meanwhile be taken as the local port of any outgoing connection on the machine.
 */
export async function freePorts(count: number): Promise<number[]> {
  const out = new Set<number>();
  while (out.size < count) {
    const p = await stablePort(HOST);
    if (p) out.add(p);
  }
  return [...out];
}

// The pause between two checks of a condition that has its own deadline.
function pollPause(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** `p`, or a rejection with `msg` if it has not settled within `ms`: a bound on a wait, not a measurement. */
export function withDeadline<T>(p: Promise<T>, ms: number, msg: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, rej) => (t = setTimeout(() => rej(new Error(msg)), ms)))]).finally(() => clearTimeout(t));
}

// Members still running when the process exits or is interrupted (a crashed or timed-out test) are killed by PID, never by name.
const livePids = new Set<number>();
let exitHookInstalled = false;
function killLive() {
  for (const pid of livePids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  livePids.clear();
}
function installExitHook() {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', killLive);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    const onSignal = () => {
      killLive();
      // Then die of the signal as if nobody had listened.
      process.removeListener(sig, onSignal);
      process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}
