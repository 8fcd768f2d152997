// `trustplane nodes ...`: a cluster's nodes as its administrator sees them: list them, and reach each one's endpoint
// (health, log) through the API server's node proxy, i.e. through the reverse tunnel the node opened; never directly.
import type { Command } from 'commander';
import type { Lease, Node } from '../apiserver/index.js';
import type { FleetClient } from '../fleet/client.js';
import { ApiClient } from '../node/api-client.js';
import { isNodeName } from '../pki/node-identity.js';
import { formatDuration } from '../util/duration.js';
import { invalid, TrustplaneError } from '../util/errors.js';
import { adminKubeconfigEntry } from './clusters.js';
import { dataDirOf, fleetApi, using, type GlobalOptions } from './context.js';
import { commandGroup } from './groups.js';
import { registerSimulate } from './nodes-simulate.js';
import { confirmByName, escapeForTerminal, outputFormat, printJson, printTable, safe } from './output.js';

/** As the node lifecycle controller's grace period: a Lease older than this means the agent has stopped reporting. */
const LEASE_GRACE_S = 40;

/** The cluster a nodes command is about: --cluster, or the only one there is. */
export async function clusterOf(f: FleetClient, flag: string | undefined): Promise<string> {
  if (flag) return flag;
  const all = await f.list();
  if (all.length === 1) return all[0].name;
  if (all.length === 0) throw new TrustplaneError('NotFound', 'there is no cluster in this data dir', 'create one with `trustplane clusters create NAME` (or run `trustplane up`)');
  throw invalid(`there are ${all.length} clusters (${all.map((c) => c.name).join(', ')}); say which with --cluster`);
}

/** An API client acting as the cluster's administrator, with a fresh admin certificate from the fleet API. */
export async function adminApi(f: FleetClient, cluster: string): Promise<ApiClient> {
  const e = await adminKubeconfigEntry(f, cluster, 'trustplane-cli');
  return new ApiClient(e.server, { cert: e.clientCert, key: e.clientKey, ca: e.caBundle }, { userAgent: 'trustplane-cli' });
}

/** Runs `fn` with an admin API client for the cluster named by --cluster (or the only one), and closes everything after. */
async function withCluster<T>(dataDir: string, flag: string | undefined, fn: (api: ApiClient, cluster: string) => Promise<T>): Promise<T> {
  return using(fleetApi(dataDir), async (f) => {
    const cluster = await clusterOf(f, flag);
    const api = await adminApi(f, cluster);
    try {
      return await fn(api, cluster);
    } finally {
      api.close();
    }
  });
}

function checkNodeName(name: string): void {
  if (!isNodeName(name)) throw invalid(`${JSON.stringify(name)} is not a node name`, 'node names are lower-case DNS names; `trustplane nodes list` shows them');
}

export interface NodeRow {
  name: string;
  ready: string;
  addresses: string[];
  agentVersion: string;
  created: string;
  leaseRenewed?: string;
  leaseAgeSeconds?: number;
}

/** What `nodes list` shows of one node: Ready is the node's own word, unless its Lease has gone stale. */
export function nodeRow(n: Node, lease: Lease | undefined, now: number): NodeRow {
  const readyCond = n.status?.conditions?.find((c) => c.type === 'Ready');
  const renewed = lease?.spec?.renewTime;
  const age = renewed ? Math.max(0, Math.round((now - Date.parse(renewed)) / 1000)) : undefined;
  let ready = readyCond?.status === 'True' ? 'Ready' : readyCond ? 'NotReady' : 'Unknown';
  if (ready === 'Ready' && (age === undefined || age > LEASE_GRACE_S)) ready = 'NotReady (lease stale)';
  return {
    name: n.metadata.name!,
    ready,
    addresses: (n.status?.addresses ?? []).map((a) => a.address),
    agentVersion: n.status?.nodeInfo?.kubeletVersion ?? '',
    created: n.metadata.creationTimestamp ?? '',
    leaseRenewed: renewed,
    leaseAgeSeconds: age,
  };
}

export function register(program: Command, globals: () => GlobalOptions): void {
  const nodes = commandGroup(program, 'nodes', "a cluster's nodes: list them, read their health and logs through the reverse tunnel, revoke one's credentials, simulate many");
  registerRevoke(nodes, globals);
  registerSimulate(nodes, globals);

  nodes
    .command('list')
    .description('list the nodes of a cluster with their readiness (their Lease must be fresh), addresses and agent version')
    .option('--cluster <name>', 'the cluster (default: the only one)')
    .option('-o, --output <format>', 'json')
    .action(async (o: { cluster?: string; output?: string }) => {
      const fmt = outputFormat(o.output ?? globals().output);
      await withCluster(dataDirOf(globals()), o.cluster, async (api, cluster) => {
        const [list, leases] = await Promise.all([
          api.get<{ items: Node[] }>('/api/v1/nodes'),
          api.get<{ items: Lease[] }>('/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases'),
        ]);
        const byName = new Map(leases.items.map((l) => [l.metadata.name, l]));
        const now = Date.now();
        const rows = list.items.map((n) => nodeRow(n, byName.get(n.metadata.name), now));
        if (fmt === 'json') return printJson({ cluster, nodes: rows });
        if (rows.length === 0) {
          process.stdout.write(`No nodes in cluster ${cluster}. Join one with the command \`trustplane node-pools bootstrap-token default-pool --cluster ${cluster}\` prints.\n`);
          return;
        }
        printTable(
          ['NAME', 'STATUS', 'ADDRESSES', 'VERSION', 'AGE', 'LEASE'],
          rows.map((r) => [
            r.name,
            r.ready,
            r.addresses.join(',') || '-',
            r.agentVersion || '-',
            r.created ? formatDuration(Math.max(0, Math.round((now - Date.parse(r.created)) / 1000))) : '-',
            r.leaseAgeSeconds === undefined ? 'none' : `${formatDuration(r.leaseAgeSeconds)} ago`,
          ]),
        );
      });
    });

  nodes
    .command('health <node>')
    .description("ask a node's endpoint for its health, through the API server and the node's reverse tunnel; exits non-zero when it is not healthy")
    .option('--cluster <name>', 'the cluster (default: the only one)')
    .option('-o, --output <format>', 'json')
    .action(async (node: string, o: { cluster?: string; output?: string }) => {
      const fmt = outputFormat(o.output ?? globals().output);
      checkNodeName(node);
      await withCluster(dataDirOf(globals()), o.cluster, async (api, cluster) => {
        const t0 = process.hrtime.bigint();
        const res = await api.stream(`/api/v1/nodes/${encodeURIComponent(node)}/proxy/healthz`, 'text/plain');
        const body = (await readAll(res)).trim();
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        const healthy = body === 'ok';
        if (fmt === 'json') printJson({ cluster, node, healthy, answer: body, latencyMs: Math.round(ms * 10) / 10 });
        else process.stdout.write(`${safe`${node}`}: ${healthy ? 'healthy' : safe`not healthy: ${body}`} (through the tunnel, ${ms.toFixed(1)} ms)\n`);
        if (!healthy) process.exitCode = 1;
      });
    });

  nodes
    .command('logs <node>')
    .description("print a node agent's log, fetched through the API server and the node's reverse tunnel")
    .option('--cluster <name>', 'the cluster (default: the only one)')
    .option('--tail <lines>', 'only the last LINES lines')
    .option('-f, --follow', 'keep printing new lines until Ctrl-C')
    .option('-o, --output <format>', 'json: {cluster, node, lines} (not with --follow)')
    .action(async (node: string, o: { cluster?: string; tail?: string; follow?: boolean; output?: string }) => {
      checkNodeName(node);
      const fmt = outputFormat(o.output ?? globals().output);
      if (fmt === 'json' && o.follow) throw invalid('-o json and --follow do not go together', 'leave out one of them');
      const q = new URLSearchParams();
      if (o.tail !== undefined) {
        if (!/^\d+$/.test(o.tail)) throw invalid(`--tail must be a whole number of lines, not "${o.tail}"`);
        q.set('tailLines', o.tail);
      }
      if (o.follow) q.set('follow', 'true');
      const query = q.size ? `?${q}` : '';
      await withCluster(dataDirOf(globals()), o.cluster, async (api, cluster) => {
        const res = await api.stream(`/api/v1/nodes/${encodeURIComponent(node)}/proxy/logs${query}`, 'text/plain');
        if (fmt === 'json') {
          const text = await readAll(res);
          return printJson({ cluster, node, lines: text.split('\n').filter((l) => l !== '') });
        }
        await new Promise<void>((resolve, reject) => {
          const stop = () => res.destroy();
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
          // What the node sends is text for a terminal: decoded across chunk edges, its control characters escaped.
          res.setEncoding('utf8');
          res.on('data', (c: string) => process.stdout.write(escapeForTerminal(c, { keepNewlines: true })));
          res.on('end', resolve);
          res.on('close', () => {
            process.off('SIGINT', stop);
            process.off('SIGTERM', stop);
            if (res.complete || res.destroyed) resolve();
            else reject(new TrustplaneError('Unavailable', `the log stream of ${node} ended early`, `check the node agent on ${node}`));
          });
          res.on('error', (e) => (res.destroyed ? resolve() : reject(e)));
        });
      });
    });
}

export function registerRevoke(nodes: Command, globals: () => GlobalOptions): void {
  nodes
    .command('revoke <node>')
    .description("revoke a node's client credentials without replacing the CA: the API server and the tunnel server refuse them from now on, its Node is marked, and it can join again only with a bootstrap token made after this")
    .option('--cluster <name>', 'the cluster (default: the only one)')
    .option('-y, --yes', 'do not ask for confirmation')
    .option('-o, --output <format>', 'json')
    .action(async (node: string, o: { cluster?: string; yes?: boolean; output?: string }) => {
      const fmt = outputFormat(o.output ?? globals().output);
      checkNodeName(node);
      if (!o.yes) await confirmByName(`Revoke every credential of node "${node}"?`, node, { doing: `revoke node "${node}"`, undone: 'revoked' });
      await using(fleetApi(dataDirOf(globals())), async (f) => {
        const cluster = await clusterOf(f, o.cluster);
        const r = await f.revokeNode(cluster, node);
        if (fmt === 'json') return printJson({ cluster, ...r });
        process.stdout.write(
          `Revoked ${r.serials.length} certificate(s) of node ${node} in cluster ${cluster} at ${r.revokedAt}: ${r.serials.join(', ')}.\n` +
            (r.nodeMarked ? `Its Node is marked NotReady (CredentialRevoked) and tainted ${'trustplane.io/credential-revoked'}.\n` : `It has no Node object.\n`) +
            `To let it join again: \`trustplane node-pools bootstrap-token POOL --cluster ${cluster} --node-name ${node}\`, then \`trustplane node join ...\` on the node.\n`,
        );
      });
    });
}

function readAll(res: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
  });
}
