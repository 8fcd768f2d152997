// Hollow nodes joining a real control plane (CA service and host as their own processes): nodes joined per second, token
// to Ready with the tunnel up, and control-plane CPU per joined node, beside the CA's raw signing of the same two
// certificates measured in the same run. NODES_BENCH_COUNT (default 1,000) sets N; NODES_BENCH_CONCURRENCY the joins in flight.
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { adminKubeconfigEntry } from '../src/cli/clusters.js';
import { startHollowNodes, type HollowProgress } from '../src/node/hollow.js';
import { buildCsr, generateKeyPair, pemEncode } from '../src/pki/index.js';
import { startControlPlane } from '../test/helpers/control-plane.js';
import { tempDir } from '../test/helpers/tmp.js';
import { controlPlaneCpu, cpuMs, ensureFileLimit, httpsGet, percentile, result, type Benchmark, type BenchResult } from './lib.js';

const CLUSTER = 'bench';
const AIM_CPU_MS_PER_NODE = 10;
const HEALTHZ_SAMPLE = 50;
const IDLE_SECONDS = 10;

function rssKib(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
}

/** A full GC of this process, for memory figures that are live objects rather than garbage not yet collected. */
const gc: () => void = (() => {
  setFlagsFromString('--expose_gc');
  return runInNewContext('gc') as () => void;
})();

async function prepareCsrs(count: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const kp = await generateKeyPair({ kind: 'ec', curve: 'P-256' });
    const der = await buildCsr({ subject: [{ type: 'O', value: 'system:nodes' }, { type: 'CN', value: `system:node:anchor-${i}` }], signer: kp.signer });
    out.push(pemEncode('CERTIFICATE REQUEST', der));
  }
  return out;
}

const bench: Benchmark = {
  names: ['nodes.join.per_s', 'nodes.join.cpu_ms_per_node'],
  async run(): Promise<BenchResult[]> {
    const count = Number(process.env.NODES_BENCH_COUNT ?? 1000);
    const concurrency = Number(process.env.NODES_BENCH_CONCURRENCY ?? 64);
    const nofile = ensureFileLimit(count);
    const load = loadavg().map((x) => Math.round(x * 100) / 100);
    const tmp = tempDir('tp-bench-nodes-');
    const cp = await startControlPlane(`${tmp.path}/data`);
    try {
      const fleet = cp.fleet();
      await fleet.create({ name: CLUSTER });
      const token = await fleet.bootstrapToken(CLUSTER, 'default-pool', { ttlSeconds: 6 * 3600 });
      const admin = await adminKubeconfigEntry(fleet, CLUSTER);
      const adminCreds = { ca: admin.caBundle, cert: admin.clientCert, key: admin.clientKey };
      const { pids, cpu, spent: cpuSum } = controlPlaneCpu(cp, CLUSTER);

      // Anchor: the CA signing kubelet client CSRs with nothing around it (sign-batch, 4 batches of 125 in flight).
      const ca = cp.ca.fleet();
      const batch = (await prepareCsrs(500)).map((csr) => ({ signer: 'kubernetes.io/kube-apiserver-client-kubelet', csr }));
      const rawCpu0 = cpuMs(pids.ca);
      const rawT0 = performance.now();
      let signed = 0;
      while (performance.now() - rawT0 < 3000) {
        await Promise.all([0, 1, 2, 3].map((i) => ca.signBatch(CLUSTER, batch.slice(i * 125, (i + 1) * 125))));
        signed += 500;
      }
      const rawRate = signed / ((performance.now() - rawT0) / 1000);
      const rawCaMsPerCsr = (cpuMs(pids.ca) - rawCpu0) / signed;

      // The join: N hollow nodes in this process, `concurrency` at a time.
      gc();
      const rss0 = process.memoryUsage();
      const hostRss0 = rssKib(pids.host);
      const cpu0 = cpu();
      const self0 = process.cpuUsage();
      let nextReport = 0;
      const onProgress = (p: HollowProgress) => {
        if (p.ready + p.failed < nextReport && !p.done) return;
        nextReport += Math.max(1, Math.round(count / 10));
        process.stderr.write(`bench: nodes ${p.ready} ready, ${p.failed} failed of ${p.count} after ${(p.elapsedMs / 1000).toFixed(1)} s\n`);
      };
      const h = await startHollowNodes({ server: token.server, token: token.token, caCertHash: token.caCertHash, count, concurrency, namePrefix: 'hollow-', onProgress, waitTimeoutMs: 600_000 });
      try {
        const s = await h.joined;
        const cpu1 = cpu();
        const self1 = process.cpuUsage(self0);
        if (s.ready === 0) throw new Error(`no hollow node joined: ${s.errors.join('; ')}`);

        // Ready as the control plane sees it, and the node endpoint through the API server and the tunnel for a sample.
        const listed = JSON.parse((await httpsGet(`${token.server}/api/v1/nodes`, adminCreds)).text) as { items: Array<{ metadata: { name: string }; status?: { conditions?: Array<{ type: string; status: string }> } }> };
        const readyListed = listed.items.filter((n) => n.metadata.name.startsWith('hollow-') && n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length;
        const sample = [...h.names].sort(() => Math.random() - 0.5).slice(0, HEALTHZ_SAMPLE);
        const healthMs: number[] = [];
        let healthOk = 0;
        for (const name of sample) {
          const t = performance.now();
          const r = await httpsGet(`${token.server}/api/v1/nodes/${name}/proxy/healthz`, adminCreds).catch(() => ({ status: 0, text: '' }));
          healthMs.push(performance.now() - t);
          if (r.status === 200 && r.text === 'ok') healthOk++;
        }
        healthMs.sort((a, b) => a - b);

        // Steady state: the fleet renewing its Leases (every 10 s, spread), nothing else.
        const idle0 = cpu();
        const leases0 = h.leaseStats().renewals;
        const idleT0 = performance.now();
        await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
        const idleSeconds = (performance.now() - idleT0) / 1000;
        const idleCpuPerS = cpuSum(idle0, cpu()) / idleSeconds;
        const renewalsPerS = (h.leaseStats().renewals - leases0) / idleSeconds;
        gc();
        const rss1 = process.memoryUsage();
        const hostRss1 = rssKib(pids.host);

        const perS = s.ready / (s.elapsedMs / 1000);
        const cpMs = cpuSum(cpu0, cpu1);
        const perNode = cpMs / s.ready;
        const shared = {
          nodes: count,
          ready: s.ready,
          failed: s.failed,
          concurrency,
          join_seconds: Math.round(s.elapsedMs) / 1000,
          join_ms_p50: Math.round(s.joinMs.p50),
          join_ms_p99: Math.round(s.joinMs.p99),
          join_step_ms_p50: s.stepMsP50,
          nodes_ready_listed: readyListed,
          healthz_through_tunnel_ok: `${healthOk}/${sample.length}`,
          healthz_ms_p50: Math.round(percentile(healthMs, 50) * 10) / 10,
          ...(s.errors.length ? { errors: s.errors } : {}),
          machine: `${cpus().length} cores, load average ${load.join(' ')} at start (shared with other work)`,
          fd_limit: nofile,
        };
        const detail = Object.fromEntries(Object.keys(cpu0).map((k) => [`${k}_cpu_ms_per_node`, Math.round(((cpu1[k] - cpu0[k]) / s.ready) * 100) / 100]));
        return [
          result('nodes.join.per_s', perS, 'nodes/s', "CA service's raw sign-batch rate / 2 certificates per node (same run)", rawRate / 2, {
            ...shared,
            ca_raw_sign_per_s: Math.round(rawRate),
            flow: 'per node: token -> client CSR (approver, signer, CA) -> mTLS Node + Lease -> serving CSR -> endpoint -> tunnel accepted; discovery once per process',
            processes: 'CA service and control plane host (embedded store) as child processes; hollow nodes in the bench process on the same cores',
          }),
          result('nodes.join.cpu_ms_per_node', perNode, 'ms', 'CA CPU to sign the 2 certificates of a node in raw sign-batch (same run)', rawCaMsPerCsr * 2, {
            ...shared,
            ...detail,
            aim_ms: AIM_CPU_MS_PER_NODE,
            aim_ratio: Math.round((perNode / AIM_CPU_MS_PER_NODE) * 1000) / 1000,
            hollow_cpu_ms_per_node: Math.round(((self1.user + self1.system) / 1000 / s.ready) * 100) / 100,
            hollow_rss_kib_per_node: Math.round((rss1.rss - rss0.rss) / 1024 / s.ready),
            hollow_heap_kib_per_node: Math.round((rss1.heapUsed - rss0.heapUsed) / 1024 / s.ready),
            host_rss_kib_per_node: Math.round((hostRss1 - hostRss0) / s.ready),
            idle_control_plane_cpu_ms_per_s: Math.round(idleCpuPerS),
            idle_lease_renewals_per_s: Math.round(renewalsPerS),
            idle_cpu_ms_per_lease_renewal: renewalsPerS > 0 ? Math.round((idleCpuPerS / renewalsPerS) * 100) / 100 : 0,
          }),
        ];
      } finally {
        await h.close();
      }
    } finally {
      await cp.stop();
      tmp.remove();
    }
  },
};

export default bench;
