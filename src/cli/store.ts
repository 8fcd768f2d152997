// `trustplane store ...`: a cluster's embedded etcd-compatible state store, credentials for etcdctl, and certificates for real etcd members.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { ClusterConfig } from '../fleet/cluster-runtime.js';
import { localCredential } from '../ca/credential.js';
import { runStoreProcess, type StoreEndpoint } from '../store/process.js';
import { parseMinVersion } from '../tls/policy.js';
import { clusterPaths } from '../util/datadir.js';
import { parseDuration } from '../util/duration.js';
import { TrustplaneError, invalid } from '../util/errors.js';
import type { CaClient } from '../ca/client.js';
import { writeFileAtomic } from '../util/files.js';
import { createLogger } from '../util/log.js';
import { MemberSupervisor, checkEtcdArgs, etcdTlsFlags, writeMemberFiles } from '../store/member-supervisor.js';
import { SIGNER_ETCD_CLIENT } from '../pki/signer-names.js';
import { parseListen } from './ca.js';
import { dataDirOf, fleetClient, type GlobalOptions } from './context.js';
import { outputFormat, printJson } from './output.js';

/** The embedded store's URL from its endpoint file, or the cluster's etcd endpoints from the cluster's host record. */
function storeUrl(dataDir: string, cluster: string): string | undefined {
  const p = clusterPaths(dataDir, cluster);
  if (existsSync(p.storeEndpoint)) return (JSON.parse(readFileSync(p.storeEndpoint, 'utf8')) as StoreEndpoint).url;
  if (existsSync(p.config)) {
    const c = JSON.parse(readFileSync(p.config, 'utf8')) as ClusterConfig;
    if (c.store.type === 'etcd') return c.store.endpoints.join(',');
  }
  return undefined;
}

function writeBundle(dir: string, files: Record<string, { data: string; mode: number }>): Record<string, string> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const out: Record<string, string> = {};
  for (const [name, f] of Object.entries(files)) {
    const path = join(dir, name);
    writeFileAtomic(path, f.data, f.mode);
    out[name] = path;
  }
  return out;
}

export function register(program: Command, globals: () => GlobalOptions): void {
  const store = program.command('store').description("a cluster's state store: the etcd v3 API over embedded SQLite, or a real etcd cluster");

  store
    .command('serve')
    .description("serve a cluster's state store (etcd v3 API, mutual TLS from the cluster's etcd API CA) in the foreground")
    .requiredOption('--cluster <name>', 'the cluster whose state this store holds')
    .option('--listen <host:port>', 'address to listen on', '127.0.0.1:0')
    .option('--auto-compaction-retention <revisions>', 'keep this many revisions; older ones are compacted periodically (0 = never)', '10000')
    .option('--auto-compaction-interval <duration>', 'how often automatic compaction runs', '5m')
    .option('--synchronous <mode>', 'SQLite synchronous setting: FULL (an acknowledged write survives power loss) or NORMAL (survives a process crash only)', 'FULL')
    .option('--tls-min-version <v>', 'minimum TLS version: 1.2 or 1.3', '1.2')
    .action(async (o: { cluster: string; listen: string; autoCompactionRetention: string; autoCompactionInterval: string; synchronous: string; tlsMinVersion: string }) => {
      const dataDir = dataDirOf(globals());
      const { host, port } = parseListen(o.listen);
      const retain = Number(o.autoCompactionRetention);
      if (!Number.isInteger(retain) || retain < 0) throw invalid(`--auto-compaction-retention "${o.autoCompactionRetention}" is not a whole number`);
      const sync = o.synchronous.toUpperCase();
      if (sync !== 'FULL' && sync !== 'NORMAL') throw invalid(`--synchronous "${o.synchronous}" must be FULL or NORMAL`);
      const ca = fleetClient(dataDir);
      const running = await runStoreProcess({
        dataDir,
        cluster: o.cluster,
        ca,
        host,
        port,
        minVersion: parseMinVersion(o.tlsMinVersion),
        synchronous: sync,
        compaction: { intervalMs: parseDuration(o.autoCompactionInterval, '--auto-compaction-interval') * 1000, retainRevisions: retain },
      });
      ca.close();
      process.stdout.write(`state store of cluster ${o.cluster} listening on ${running.url} (${clusterPaths(dataDir, o.cluster).storeDb})\n`);
      await new Promise<void>((done) => {
        const stop = () => void running.stop().then(done);
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });

  store
    .command('credentials <cluster>')
    .description("admin only: write the etcd API CA bundle and a client certificate and key that etcdctl uses as they are")
    .requiredOption('--out <dir>', 'directory for ca.crt, client.crt and client.key (0600)')
    .option('--name <cn>', 'the client certificate common name', 'trustplane-admin')
    .option('-o, --output <format>', 'json')
    .action(async (cluster: string, o: { out: string; name: string; output?: string }) => {
      const fmt = outputFormat(o.output ?? globals().output);
      const dataDir = dataDirOf(globals());
      const ca = fleetClient(dataDir);
      try {
        const view = await ca.describeCluster(cluster);
        const apiCa = view.authorities.find((a) => a.kind === 'etcd-api')!.bundle;
        const cred = await localCredential([{ type: 'CN', value: o.name }], (csr) => ca.sign(cluster, { signer: SIGNER_ETCD_CLIENT, csr }));
        const dir = resolve(o.out);
        const files = writeBundle(dir, { 'ca.crt': { data: apiCa, mode: 0o644 }, 'client.crt': { data: cred.cert, mode: 0o644 }, 'client.key': { data: cred.key, mode: 0o600 } });
        const url = storeUrl(dataDir, cluster) ?? 'https://127.0.0.1:<store port>';
        const flags = `--endpoints=${url} --cacert=${files['ca.crt']} --cert=${files['client.crt']} --key=${files['client.key']}`;
        if (fmt === 'json') printJson({ cluster, endpoint: url, files, notAfter: cred.notAfter, etcdctlFlags: flags });
        else process.stdout.write(`Wrote ${dir}/{ca.crt,client.crt,client.key} (expires ${cred.notAfter}).\nUse them with:\n  ETCDCTL_API=3 etcdctl ${flags} endpoint status\n`);
      } finally {
        ca.close();
      }
    });

  store
    .command('member-certs <cluster>')
    .description("for a real etcd cluster run by hand: write one member's client-port certificate (etcd API CA) and peer certificate (etcd peer CA), and both CA bundles (`store member` also keeps them current)")
    .requiredOption('--member <name>', 'the member name (certificate CN)')
    .option('--ip <addresses>', 'comma-separated IP addresses the member listens on', '127.0.0.1')
    .option('--dns <names>', 'comma-separated DNS names of the member', 'localhost')
    .requiredOption('--out <dir>', 'directory for the files')
    .option('-o, --output <format>', 'json')
    .action(async (cluster: string, o: { member: string; ip: string; dns: string; out: string; output?: string }) => {
      const fmt = outputFormat(o.output ?? globals().output);
      const ca = fleetClient(dataDirOf(globals()));
      try {
        const view = await ca.describeCluster(cluster);
        const { files } = await writeMemberFiles(ca, view, { member: o.member, dir: resolve(o.out), sans: memberSans(o), now: new Date(), force: true });
        const flat = {
          'etcd-api-ca.crt': files['etcd-api-ca.crt'],
          'etcd-peer-ca.crt': files['etcd-peer-ca.crt'],
          [`server-${o.member}.crt`]: files.server.cert,
          [`server-${o.member}.key`]: files.server.key,
          [`peer-${o.member}.crt`]: files.peer.cert,
          [`peer-${o.member}.key`]: files.peer.key,
        };
        const etcdFlags = etcdTlsFlags(files);
        if (fmt === 'json') printJson({ cluster, member: o.member, files: flat, etcdFlags: etcdFlags.join(' ') });
        else process.stdout.write(`Wrote the certificates of member ${o.member} to ${resolve(o.out)}.\nStart it with these etcd flags:\n  ${etcdFlags.join(' \\\n  ')}\n`);
      } finally {
        ca.close();
      }
    });

  store
    .command('member <cluster> <etcd...>')
    .usage('<cluster> --member NAME --out DIR [options] -- etcd --name NAME --advertise-client-urls https://IP:PORT [etcd flags]')
    .description(
      "run one member of a cluster's real etcd cluster and keep its certificates current: trustplane writes the member's TLS files and flags, " +
        're-issues its certificates when an etcd CA rotates (etcd reloads them with no restart), and restarts etcd on new trusted CA files ' +
        'one member at a time (a lock in the cluster\'s store; only while every member answers). It reports what the member trusts, and ' +
        'the control plane completes an etcd CA rotation once every member has moved. Everything after -- is the etcd command, without TLS flags.',
    )
    .requiredOption('--member <name>', 'the member name (certificate CN)')
    .option('--ip <addresses>', 'comma-separated IP addresses the member listens on', '127.0.0.1')
    .option('--dns <names>', 'comma-separated DNS names of the member', 'localhost')
    .requiredOption('--out <dir>', "directory for the member's certificate files")
    .option('--etcd-endpoints <urls>', "the cluster's etcd client URLs (default: the cluster's, from the data dir)")
    .option('--sync-interval <duration>', 'how often to look for new certificates and trust', '10s')
    .action(async (cluster: string, etcd: string[], o: { member: string; ip: string; dns: string; out: string; etcdEndpoints?: string; syncInterval: string }) => {
      checkEtcdArgs(etcd.slice(1));
      const dataDir = dataDirOf(globals());
      const endpoints = (o.etcdEndpoints ?? storeUrl(dataDir, cluster) ?? '').split(',').filter(Boolean);
      if (endpoints.length === 0) throw invalid(`cluster ${cluster} has no etcd endpoints in ${dataDir}`, 'pass --etcd-endpoints https://host:port[,...]');
      const [bin, ...args] = etcd;
      // The CA service may be down when the member starts or restart on another port: connect at each call that needs
      // it, again after a failure to reach it.
      let client: CaClient | undefined;
      const reach = async <T>(call: (c: CaClient) => Promise<T>): Promise<T> => {
        client ??= fleetClient(dataDir);
        try {
          return await call(client);
        } catch (e) {
          if (e instanceof TrustplaneError && (e.reason === 'Unavailable' || e.reason === 'Timeout')) {
            client.close();
            client = undefined;
          }
          throw e;
        }
      };
      const ca: Pick<CaClient, 'describeCluster' | 'sign'> = { describeCluster: (n) => reach((c) => c.describeCluster(n)), sign: (n, r) => reach((c) => c.sign(n, r)) };
      const supervisor = new MemberSupervisor({
        cluster,
        member: o.member,
        dir: resolve(o.out),
        sans: memberSans(o),
        ca,
        endpoints,
        etcd: { bin, args },
        syncIntervalMs: parseDuration(o.syncInterval, '--sync-interval') * 1000,
        log: createLogger('trustplane-store-member'),
      });
      process.once('SIGINT', () => void supervisor.stop());
      process.once('SIGTERM', () => void supervisor.stop());
      try {
        await supervisor.start();
        process.exitCode = await supervisor.done;
      } finally {
        await supervisor.stop();
        client?.close();
      }
    });
}

function memberSans(o: { ip: string; dns: string }): { ip: string[]; dns: string[] } {
  const split = (v: string) => v.split(',').map((x) => x.trim()).filter(Boolean);
  return { ip: split(o.ip), dns: split(o.dns) };
}
