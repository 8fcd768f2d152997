// A rotation of the cluster root CA with N hollow nodes on a real control plane (CA service and host as their own
// processes): start → every node re-issued both certificates by itself → complete, under a steady load of the nodes'
// Lease renewals and an admin request loop; beside the join of the same N nodes measured in the same run (a rotation
// asks two certificates per node, as a join does). ROTATION_BENCH_NODES (default 1,000) sets N;
// ROTATION_BENCH_CONCURRENCY the joins and the re-issues in flight (default 64); ROTATION_BENCH_JITTER_MS the nodes'
// random delay before re-issuing (default the hollow nodes' own, 10 s).
import { cpus, loadavg } from 'node:os';
import { parseTrustHeader } from '../src/apiserver/api/cluster-info.js';
import { adminKubeconfigEntry } from '../src/cli/clusters.js';
import { ApiClient } from '../src/node/api-client.js';
import { startHollowNodes, type HollowProgress } from '../src/node/hollow.js';
import { TrustplaneError } from '../src/util/errors.js';
import { waitFor } from '../src/util/wait.js';
import { startControlPlane } from '../test/helpers/control-plane.js';
import { tempDir } from '../test/helpers/tmp.js';
import { controlPlaneCpu, ensureFileLimit, httpsGet, result, type Benchmark, type BenchResult } from './lib.js';

const CLUSTER = 'bench-rot';
const HEALTHZ_SAMPLE = 20;
/** The steady load measured alone before the rotation, to tell the rotation's own CPU from it. */
const BASELINE_SECONDS = 10;

interface Creds {
  ca: string;
  cert: string;
  key: string;
}

const bench: Benchmark = {
  names: ['rotation.total_s', 'rotation.failed_requests', 'rotation.cpu_ms_per_node'],
  async run(): Promise<BenchResult[]> {
    const count = Number(process.env.ROTATION_BENCH_NODES ?? 1000);
    const concurrency = Number(process.env.ROTATION_BENCH_CONCURRENCY ?? 64);
    const jitterMs = process.env.ROTATION_BENCH_JITTER_MS === undefined ? undefined : Number(process.env.ROTATION_BENCH_JITTER_MS);
    const nofile = ensureFileLimit(count);
    const load = loadavg().map((x) => Math.round(x * 100) / 100);
    const tmp = tempDir('tp-bench-rotation-');
    const cp = await startControlPlane(`${tmp.path}/data`);
    try {
      const fleet = cp.fleet();
      await fleet.create({ name: CLUSTER });
      const token = await fleet.bootstrapToken(CLUSTER, 'default-pool', { ttlSeconds: 6 * 3600 });
      const oldAdmin = await adminKubeconfigEntry(fleet, CLUSTER);
      const { cpu, spent: cpuSum } = controlPlaneCpu(cp, CLUSTER);

      // The anchor: the same N nodes joining (token → client CSR → Node and Lease → serving CSR → tunnel).
      const join0 = cpu();
      let nextReport = 0;
      const onProgress = (p: HollowProgress) => {
        if (p.ready + p.failed < nextReport && !p.done) return;
        nextReport += Math.max(1, Math.round(count / 10));
        process.stderr.write(`bench: join ${p.ready} ready, ${p.failed} failed of ${p.count} after ${(p.elapsedMs / 1000).toFixed(1)} s\n`);
      };
      const h = await startHollowNodes({
        server: token.server,
        token: token.token,
        caCertHash: token.caCertHash,
        count,
        concurrency,
        namePrefix: 'rot-',
        onProgress,
        waitTimeoutMs: 600_000,
        maxReissuesInFlight: concurrency,
        ...(jitterMs !== undefined ? { rotationJitterMs: jitterMs } : {}),
      });
      let running = true;
      const adminClients: ApiClient[] = [];
      const adminClientOf = (c: Creds) => {
        const client = new ApiClient(token.server, c);
        adminClients.push(client);
        return client;
      };
      try {
        const s = await h.joined;
        const joinCpuMs = cpuSum(join0, cpu());
        if (s.ready !== count) throw new Error(`only ${s.ready} of ${count} hollow nodes joined: ${s.errors.join('; ')}`);
        const joinSeconds = s.elapsedMs / 1000;

        // The steady load besides the Leases: an admin client (keep-alive, as a controller) reading nodes one by one,
        // with the old credential until completion and a new one after. A request refused for the retired generation
        // once completion began is not a failure: its credential was no longer valid.
        const failures: string[] = [];
        let adminRequests = 0;
        let admin: Creds = { ca: oldAdmin.caBundle, cert: oldAdmin.clientCert, key: oldAdmin.clientKey };
        let adminClient = adminClientOf(admin);
        let completing = false;
        const adminLoop = (async () => {
          for (let i = 0; running; i++) {
            try {
              await adminClient.get(`/api/v1/nodes/${h.names[i % count]}`);
              adminRequests++;
            } catch (e) {
              if (!(completing && /retired generation/.test((e as Error).message))) failures.push(`admin: ${(e as Error).message}`);
              else adminRequests++;
            }
            await new Promise((r) => setTimeout(r, 50));
          }
        })();

        // The steady load alone, for its CPU rate.
        const base0 = cpu();
        const baseT0 = performance.now();
        await new Promise((r) => setTimeout(r, BASELINE_SECONDS * 1000));
        const steadyCpuMsPerS = cpuSum(base0, cpu()) / ((performance.now() - baseT0) / 1000);
        const leases0 = h.leaseStats();
        const admin0 = { requests: adminRequests, failures: failures.length };

        // start → every node on the new signer → complete.
        const rot0 = cpu();
        const t0 = performance.now();
        await fleet.update(CLUSTER, { startCredentialRotation: true });
        const startedS = (performance.now() - t0) / 1000;
        const signer = parseTrustHeader(String((await httpsGet(`${token.server}/version`, admin)).headers['x-trustplane-trust-bundle'] ?? ''))?.signer;
        if (!signer) throw new Error('the API server named no signer in its trust header after the rotation started');
        let lastReport = 0;
        await waitFor(`every hollow node on the new generation`, () => {
          const t = h.trustStats(signer);
          if (performance.now() - lastReport > 10_000) {
            lastReport = performance.now();
            process.stderr.write(`bench: rotation ${t.nodesOnSigner}/${count} nodes moved after ${((performance.now() - t0) / 1000).toFixed(1)} s (re-issues ${t.reissuesInFlight} in flight, ${t.reissuesQueued} queued, ${t.failures} failed)\n`);
          }
          return t.nodesOnSigner === count ? true : undefined;
        }, 1_800_000, 200);
        const movedS = (performance.now() - t0) / 1000;
        completing = true;
        let refused = 0;
        const done = await waitFor('completion to be accepted', async () => {
          try {
            return await fleet.update(CLUSTER, { completeCredentialRotation: true });
          } catch (e) {
            if (!(e instanceof TrustplaneError) || e.reason !== 'Conflict') throw e;
            refused++;
            return undefined;
          }
        }, 120_000, 500);
        const totalS = (performance.now() - t0) / 1000;
        const rot1 = cpu();
        const rotCpuMs = cpuSum(rot0, rot1);
        if (done.rotation?.phase !== 'done') throw new Error(`the rotation ended in phase ${done.rotation?.phase}`);
        const fresh = await adminKubeconfigEntry(fleet, CLUSTER);
        admin = { ca: fresh.caBundle, cert: fresh.clientCert, key: fresh.clientKey };
        // The old client is closed at the end: closing it now would cut a request it has in flight.
        adminClient = adminClientOf(admin);

        // Settled: every node trusts the new bundle alone (read again after completion), and renews its Lease with it.
        await waitFor('every hollow node to trust the final bundle', () => (h.caBundle === fresh.caBundle && h.trustStats().nodesOnBundle === count ? true : undefined), 120_000, 200);
        const settledS = (performance.now() - t0) / 1000;
        const settleCpuMs = cpuSum(rot0, cpu());
        const renewedAtSettle = h.leaseStats().renewals;
        await waitFor('a round of Lease renewals on the final bundle', () => (h.leaseStats().renewals >= renewedAtSettle + count ? true : undefined), 120_000, 200);
        running = false;
        await adminLoop;
        const leases1 = h.leaseStats();
        const trust = h.trustStats(signer);

        // Through the tunnels, with the new bundle only.
        const sample = [...h.names].sort(() => Math.random() - 0.5).slice(0, HEALTHZ_SAMPLE);
        let healthOk = 0;
        for (const name of sample) {
          const r = await httpsGet(`${token.server}/api/v1/nodes/${name}/proxy/healthz`, admin).catch(() => ({ status: 0, text: '' }));
          if (r.status === 200 && r.text === 'ok') healthOk++;
        }

        const leaseFailures = leases1.failures - leases0.failures;
        const adminFailures = failures.length - admin0.failures;
        const adminMade = adminRequests - admin0.requests + adminFailures;
        const failed = adminFailures + leaseFailures;
        const requests = adminMade + (leases1.renewals - leases0.renewals) + leaseFailures;
        const shared = {
          nodes: count,
          concurrency,
          rotation_jitter_ms: jitterMs ?? 10_000,
          lease_interval_s: 10,
          start_s: Math.round(startedS * 100) / 100,
          moved_s: Math.round(movedS * 10) / 10,
          settled_s: Math.round(settledS * 10) / 10,
          complete_refused: refused,
          join_s: Math.round(joinSeconds * 10) / 10,
          reissued: trust.reissued,
          reissue_failures: trust.failures,
          cluster_info_reads: trust.bundleReads,
          healthz_through_tunnel_ok: `${healthOk}/${sample.length}`,
          ...(trust.errors.length ? { reissue_errors: trust.errors } : {}),
          machine: `${cpus().length} cores, load average ${load.join(' ')} at start (shared with other work)`,
          fd_limit: nofile,
        };
        return [
          result('rotation.total_s', totalS, 's', 'the same N hollow nodes joining (2 CSRs per node, as a rotation), same run', joinSeconds, shared),
          result('rotation.failed_requests', failed, 'requests', 'requests of the steady load during the rotation (Lease renewals + admin loop)', requests, {
            ...shared,
            lease_renewals: leases1.renewals - leases0.renewals,
            lease_failures: leaseFailures,
            admin_requests: adminMade,
            admin_failures: adminFailures,
            ...(failures.length ? { first_failures: failures.slice(0, 5) } : {}),
          }),
          result('rotation.cpu_ms_per_node', rotCpuMs / count, 'ms', 'control-plane CPU per node of the join of the same N nodes, same run', joinCpuMs / count, {
            ...shared,
            ...Object.fromEntries(Object.keys(rot0).map((k) => [`${k}_cpu_ms_total`, Math.round(rot1[k] - rot0[k])])),
            cpu_ms_per_node_to_settled: Math.round((settleCpuMs / count) * 100) / 100,
            steady_load_cpu_ms_per_s: Math.round(steadyCpuMsPerS),
            cpu_ms_per_node_net_of_steady_load: Math.round(((rotCpuMs - steadyCpuMsPerS * totalS) / count) * 100) / 100,
          }),
        ];
      } finally {
        running = false;
        for (const c of adminClients) c.close();
        await h.close();
      }
    } finally {
      await cp.stop();
      tmp.remove();
    }
  },
};

export default bench;
