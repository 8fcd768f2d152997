// Fault: one member of a real 3-member etcd cluster is cut off (SIGSTOP: its sockets stay open, nothing answers) while
// the API server writes through it: writes go on through the majority, nothing acknowledged is lost, the store client
// fails over, and the member catches up once it runs again.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { startApiServer, type RunningApiServer } from '../../src/apiserver/index.js';
import { ApiClient } from '../../src/node/api-client.js';
import { openStore, type Store } from '../../src/store/client.js';
import { waitFor } from '../../src/util/wait.js';
import { startEtcdCluster, type EtcdCluster } from '../helpers/etcd-cluster.js';
import { makeOpensslCa } from '../helpers/openssl-certs.js';
import { tempDir } from '../helpers/tmp.js';
import { rawClient } from '../store/conformance/raw.js';

const LEASES = '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases';
const WRITERS = 8;

interface Lease {
  metadata: { name: string; resourceVersion?: string };
  spec: { holderIdentity?: string; leaseDurationSeconds?: number };
}

describe('fault: an etcd member cut off under the API server\'s write load', { timeout: 90_000 }, () => {
  const tmp = tempDir('tp-fault-etcd-');
  let cluster: EtcdCluster | undefined;
  let store: Store | undefined;
  let api: RunningApiServer | undefined;
  let client: ApiClient | undefined;
  let stopped: number | undefined;
  after(async () => {
    if (stopped) process.kill(stopped, 'SIGCONT');
    client?.close();
    await api?.close();
    await store?.close();
    await cluster?.stop();
    tmp.remove();
  });

  const start = async () => {
    // Short raft timers, so that cutting off the leader costs an election of a second rather than several.
    cluster = await startEtcdCluster({ members: 3, extraArgs: ['--heartbeat-interval=50', '--election-timeout=500'] });
    const ca = makeOpensslCa('cluster root CA', tmp.path);
    const serving = ca.issue('apiserver', { cn: 'kube-apiserver', sans: ['IP:127.0.0.1'], eku: ['serverAuth'] });
    const admin = ca.issue('admin', { cn: 'admin', o: 'system:masters', eku: ['clientAuth'] });
    return { ca, serving, admin };
  };

  for (const cutRole of ['follower', 'leader'] as const) {
    it(`the ${cutRole} the store client uses is cut off: writes go on through the majority, every acknowledged one is kept, and the member catches up`, async (t) => {
      const pki = pkiOnce ?? (pkiOnce = await start());
      const c = cluster!;
      // The store client prefers its first endpoint: the member cut off goes first.
      const probe = await openStore({ endpoints: c.endpoints, tls: c.tls, timeoutMs: 10_000 });
      const roles = await probe.status();
      await probe.close();
      const victim = roles.findIndex((r) => (cutRole === 'leader') === !!r.isLeader);
      const endpoints = [c.endpoints[victim], ...c.endpoints.filter((_, i) => i !== victim)];
      store = await openStore({ endpoints, tls: c.tls, timeoutMs: 10_000 });
      api = await startApiServer({ cluster: 'cut', tls: { cert: pki.serving.cert, key: pki.serving.key }, clientCa: pki.ca.cert, store });
      client = new ApiClient(api.url, { cert: pki.admin.cert, key: pki.admin.key, ca: pki.ca.cert });
      try {
        await cutUnderLoad(t, c, victim, `${cutRole}-`);
      } finally {
        client.close();
        await api.close();
        await store.close();
        client = undefined;
        api = undefined;
        store = undefined;
      }
    });
  }
  let pkiOnce: Awaited<ReturnType<typeof start>> | undefined;

  async function cutUnderLoad(t: { diagnostic(m: string): void }, cluster: EtcdCluster, victim: number, prefix: string): Promise<void> {
    const role = (await store!.status())[0].isLeader ? 'leader' : 'follower';
    t.diagnostic(`cutting off member ${victim} (the ${role})`);
    // Each write creates a Lease, then updates it against its resourceVersion (a compare-and-swap in the store).
    const acked = new Map<string, string>();
    const failed: string[] = [];
    let next = 0;
    let cutAt = 0;
    let resumedAt = 0;
    let ackedWhileCut = 0;
    let slowest = 0;
    const deadline = Date.now() + 60_000;
    const phaseDone = () => resumedAt > 0 && acked.size >= 900;
    const writer = async () => {
      while (!phaseDone() && Date.now() < deadline) {
        const name = `${prefix}${next++}`;
        const sent = Date.now();
        try {
          const created = await client!.post<Lease>(LEASES, { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name }, spec: { holderIdentity: 'a', leaseDurationSeconds: 40 } });
          const updated = await client!.put<Lease>(`${LEASES}/${name}`, { ...created, spec: { ...created.spec, holderIdentity: `held-${name}` } });
          acked.set(name, updated.spec.holderIdentity!);
          if (cutAt && !resumedAt && sent >= cutAt) ackedWhileCut++;
        } catch (e) {
          failed.push(`${name}: ${(e as Error).message}`);
        }
        slowest = Math.max(slowest, Date.now() - sent);
      }
    };
    const load = Promise.all(Array.from({ length: WRITERS }, writer));

    await waitFor('200 writes before the cut', () => acked.size >= 200 || undefined, 30_000, 20);
    const pid = cluster.pids()[victim];
    process.kill(pid, 'SIGSTOP');
    stopped = pid;
    cutAt = Date.now();
    await waitFor('300 writes acknowledged while the member is cut off', () => ackedWhileCut >= 300 || undefined, 40_000, 20);
    process.kill(pid, 'SIGCONT');
    stopped = undefined;
    resumedAt = Date.now();
    await load;

    t.diagnostic(`${acked.size} acknowledged (${ackedWhileCut} sent and acknowledged while cut off), ${failed.length} failed, slowest write ${slowest} ms`);
    // Only writes in flight to the member at the cut may fail (their outcome unknown to the client): at most one per writer.
    assert.ok(failed.length <= WRITERS, `failed writes: ${failed.length}: ${failed.slice(0, 3).join(' | ')}`);
    assert.ok(ackedWhileCut >= 300);

    // Every acknowledged write is there, with its last value, read through the API server.
    const list = await client!.get<{ items: Lease[] }>(LEASES);
    const got = new Map(list.items.filter((l) => l.metadata.name.startsWith(prefix)).map((l) => [l.metadata.name, l.spec.holderIdentity]));
    const missing = [...acked].filter(([name, holder]) => got.get(name) !== holder).map(([name]) => name);
    assert.deepEqual(missing, [], 'every acknowledged write is readable');

    // The member that was cut off catches up: its own (serializable) read sees every key the majority has.
    const revision = (await store!.status()).find((s, i) => i !== 0 && s.revision !== undefined)!.revision!;
    const raw = rawClient(cluster.endpoints[victim], cluster.tls);
    try {
      await waitFor('the member to catch up', async () => {
        const r = await raw.range({ key: Buffer.from('/'), range_end: Buffer.from('0'), count_only: true, serializable: true });
        return BigInt(r.header.revision) >= revision || undefined;
      }, 30_000, 100);
      const prefix = await raw.range({ key: Buffer.from('/'), range_end: Buffer.from('0'), keys_only: true, serializable: true });
      const keys = (prefix.kvs as Array<{ key: Buffer }>).map((kv) => Buffer.from(kv.key).toString());
      for (const name of acked.keys()) assert.ok(keys.some((k) => k.endsWith(`/${name}`)), `member ${victim} holds ${name}`);
    } finally {
      raw.close();
    }
  }
});
