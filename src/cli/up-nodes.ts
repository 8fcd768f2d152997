// The local node agents of `trustplane up`: one child process per node, each with its own node data dir under
// <data dir>/nodes/<cluster>/<node>. A node that has joined before starts again on its credentials (`node start`);
// a new one joins with a single-use bootstrap token bound to its name (`node join`).
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { ensurePrivateDir } from '../util/files.js';
import { join } from 'node:path';
import type { Node } from '../apiserver/index.js';
import type { FleetClient } from '../fleet/client.js';
import { DEFAULT_POOL } from '../fleet/api.js';
import { nodePaths } from '../node/state.js';
import { adminApi } from './nodes.js';
import { countsLine, estimateSecondsLeft, type ProgressLine } from './progress.js';

/** Long enough for a slow machine to join; the token is bound to one node name and spent by its first CSR. */
const JOIN_TOKEN_TTL_S = 15 * 60;

export interface LocalNode {
  name: string;
  dataDir: string;
  child: ChildProcess;
  /** True when it joined in this run, false when it started on credentials it already had. */
  joined: boolean;
}

export const localNodeName = (cluster: string, i: number) => `${cluster}-node-${i}`;
export const localNodesDir = (dataDir: string, cluster: string) => join(dataDir, 'nodes', cluster);

/** Starts (or joins) nodes 1..count of `cluster` as children made by `spawn(args, logFile)`. */
export async function startLocalNodes(
  f: FleetClient,
  dataDir: string,
  cluster: string,
  count: number,
  spawn: (args: string[], logFile: string, env: Record<string, string>) => ChildProcess,
  progress: (msg: string) => void,
): Promise<LocalNode[]> {
  const out: LocalNode[] = [];
  for (let i = 1; i <= count; i++) {
    const name = localNodeName(cluster, i);
    const dir = join(localNodesDir(dataDir, cluster), name);
    ensurePrivateDir(dir);
    const p = nodePaths(dir);
    const stdoutLog = join(dir, 'stdout.log');
    // The token goes by environment, not argv, so that the process list does not show it. A node that has joined before
    // holds it to join again by itself should its client certificate have lapsed while it was down.
    const t = await f.bootstrapToken(cluster, DEFAULT_POOL, { ttlSeconds: JOIN_TOKEN_TTL_S, nodeName: name });
    const env = { TRUSTPLANE_BOOTSTRAP_TOKEN: t.token };
    const joined = !existsSync(p.config);
    const args = joined
      ? ['node', 'join', '--server', t.server, '--ca-cert-hash', t.caCertHash, '--name', name, '--node-data-dir', dir]
      : ['node', 'start', '--node-data-dir', dir];
    out.push({ name, dataDir: dir, joined, child: spawn(args, stdoutLog, env) });
  }
  progress(`${out.filter((n) => n.joined).length} node(s) joining, ${out.filter((n) => !n.joined).length} starting on their credentials: ${out.map((n) => n.name).join(', ')}`);
  return out;
}

/**
 * Waits until every node is Ready and answers its health check through the API server's node proxy (so its tunnel is
 * up), reporting each one as it gets there, and the count with the time left on `line`. Returns the names still not
 * there when the time ran out.
 */
export async function waitForNodes(f: FleetClient, cluster: string, nodes: LocalNode[], timeoutMs: number, progress: (msg: string) => void, line?: ProgressLine): Promise<string[]> {
  const api = await adminApi(f, cluster);
  const pending = new Set(nodes.map((n) => n.name));
  const failed: string[] = [];
  const started = Date.now();
  const deadline = started + timeoutMs;
  try {
    while (pending.size > 0 && Date.now() < deadline) {
      for (const n of nodes) if (pending.has(n.name) && n.child.exitCode !== null) {
        progress(`node ${n.name} exited (${n.child.exitCode}); see ${join(n.dataDir, 'stdout.log')} and ${nodePaths(n.dataDir).log}`);
        pending.delete(n.name);
        failed.push(n.name);
      }
      const list = await api.get<{ items: Node[] }>('/api/v1/nodes').catch(() => ({ items: [] as Node[] }));
      const ready = new Set(list.items.filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).map((n) => n.metadata.name));
      await Promise.all(
        [...pending].filter((name) => ready.has(name)).map(async (name) => {
          const ok = await api
            .stream(`/api/v1/nodes/${name}/proxy/healthz`, 'text/plain')
            .then((res) => (res.resume(), true))
            .catch(() => false);
          if (ok && pending.delete(name)) progress(`node ${name} is Ready and reachable through its tunnel (${nodes.length - pending.size}/${nodes.length})`);
        }),
      );
      const settled = nodes.length - pending.size;
      line?.update(`==> nodes Ready and reachable: ${countsLine(settled - failed.length, nodes.length, estimateSecondsLeft(settled, nodes.length, started, Date.now()))}${failed.length ? `, ${failed.length} exited` : ''}`);
      if (pending.size > 0) await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    api.close();
  }
  return [...pending, ...failed];
}
