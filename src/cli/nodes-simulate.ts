// `trustplane nodes simulate`: hollow nodes (as kubemark) — N lightweight node agents in this process, each with real keys,
// CSRs, mTLS and a reverse tunnel, to load a control plane until Ctrl-C or --duration.
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { DEFAULT_POOL } from '../fleet/api.js';
import { hollowFailure, startHollowNodes, type HollowJoinSummary, type HollowNodes } from '../node/hollow.js';
import { parseDuration } from '../util/duration.js';
import { invalid } from '../util/errors.js';
import { dataDirOf, fleetApi, using, type GlobalOptions } from './context.js';
import { outputFormat, printJson } from './output.js';
import { estimateSecondsLeft, ProgressLine, timeLeft } from './progress.js';

interface SimulateFlags {
  count: string;
  cluster?: string;
  nodePool: string;
  server?: string;
  token?: string;
  caCertHash: string[];
  caFile?: string;
  concurrency: string;
  namePrefix?: string;
  duration?: string;
  waitTimeout: string;
  leaseInterval: string;
  output?: string;
  dataDir?: string;
}

const collect = (v: string, prev: string[]) => [...prev, v];

function wholeNumber(v: string, flag: string, max: number): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || n < 1 || n > max) throw invalid(`${flag} ${v} is not a whole number from 1 to ${max}`);
  return n;
}

/** Where the nodes join: the flags given, or a new token from the local control plane for --cluster. */
async function joinInputs(f: SimulateFlags, dataDir: string, ttlSeconds: number): Promise<{ server: string; token: string; caCertHash: string[]; caFile?: string }> {
  if (f.cluster) {
    if (f.server || f.token || f.caCertHash.length || f.caFile) throw invalid('--cluster gets its own server, token and CA hash', 'pass either --cluster NAME, or --server, --token and --ca-cert-hash');
    const t = await using(fleetApi(dataDir), (fleet) => fleet.bootstrapToken(f.cluster!, f.nodePool, { ttlSeconds }));
    return { server: t.server, token: t.token, caCertHash: [t.caCertHash] };
  }
  if (!f.server || !f.token || (!f.caCertHash.length && !f.caFile)) {
    throw invalid('say which cluster the hollow nodes join', 'pass --cluster NAME (a cluster of the local control plane), or --server URL --token TOKEN --ca-cert-hash sha256:...');
  }
  return { server: f.server, token: f.token, caCertHash: f.caCertHash, caFile: f.caFile };
}

function describeSummary(s: HollowJoinSummary): string {
  const secs = (ms: number) => `${(ms / 1000).toFixed(1)}s`;
  return (
    `Hollow nodes: ${s.ready} ready, ${s.failed} failed of ${s.count} in ${secs(s.elapsedMs)} (${s.joinRatePerSecond.toFixed(1)} nodes/s); ` +
    `join time p50 ${secs(s.joinMs.p50)}, p99 ${secs(s.joinMs.p99)}\n` +
    s.errors.map((e) => `  failure: ${e}\n`).join('')
  );
}

/** Updates the progress line on standard error every second until stopped; all nodes joined is a milestone. */
function progressTicker(h: HollowNodes, line: ProgressLine): () => void {
  let last = 0;
  let joined = false;
  const started = Date.now();
  const timer = setInterval(() => {
    const p = h.progress();
    const l = h.leaseStats();
    const settled = p.ready + p.failed;
    const left = settled < p.count ? estimateSecondsLeft(settled, p.count, started, Date.now()) : undefined;
    const milestone = !joined && settled >= p.count;
    joined ||= milestone;
    line.update(
      `[${Math.round(p.elapsedMs / 1000)}s] ready ${p.ready}/${p.count} (+${p.ready - last}/s), failed ${p.failed}, joining ${p.started - p.ready - p.failed}, ` +
        `lease renewals ${l.renewals}${l.skipped ? ` (${l.skipped} skipped: the control plane is behind)` : ''}` +
        timeLeft(left),
      { milestone },
    );
    last = p.ready;
  }, 1000);
  return () => clearInterval(timer);
}

/** Resolves on SIGINT, SIGTERM or after `durationMs`; `dispose` removes the listeners and the timer. */
function stopSignal(durationMs: number | undefined): { stopped: Promise<void>; dispose(): void } {
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
  let resolve!: () => void;
  const stopped = new Promise<void>((r) => (resolve = r));
  const onSignal = () => resolve();
  for (const sig of signals) process.once(sig, onSignal);
  const timer = durationMs === undefined ? undefined : setTimeout(resolve, durationMs);
  return {
    stopped,
    dispose() {
      clearTimeout(timer);
      for (const sig of signals) process.off(sig, onSignal);
    },
  };
}

export function registerSimulate(nodes: Command, globals?: () => GlobalOptions): void {
  nodes
    .command('simulate')
    .description('run hollow nodes (as kubemark): N lightweight node agents in this process, each with its own keys, certificates, mTLS connection and reverse tunnel, to load a control plane')
    .requiredOption('--count <n>', 'how many hollow nodes')
    .option('--cluster <name>', 'a cluster of the local control plane (--data-dir): a bootstrap token is made for it')
    .option('--node-pool <pool>', 'with --cluster: the node pool the token is made for', DEFAULT_POOL)
    .option('--server <url>', 'the API server, https://HOST:PORT (instead of --cluster)')
    .option('--token <token>', 'a bootstrap token not bound to a node name (instead of --cluster)')
    .option('--ca-cert-hash <sha256:hex>', "the cluster root CA's public key hash (repeatable; instead of --cluster)", collect, [] as string[])
    .option('--ca-file <file>', 'a PEM file with the cluster root CA, instead of --ca-cert-hash')
    .option('--concurrency <n>', 'joins in progress at once', '32')
    .option('--name-prefix <prefix>', 'node names are <prefix><index> (default hollow-<random>-, so runs do not collide)')
    .option('--duration <duration>', 'stop after this long (e.g. 90s, 10m); default: run until Ctrl-C or SIGTERM')
    .option('--wait-timeout <duration>', 'how long each node waits for each certificate and for its tunnel', '2m')
    .option('--lease-interval <duration>', 'how often each node renews its Lease (spread over the interval)', '10s')
    .option('-o, --output <format>', 'json: the summary as JSON on standard output')
    .action(async (f: SimulateFlags, cmd: Command) => {
      const fmt = outputFormat(f.output ?? globals?.().output);
      const count = wholeNumber(f.count, '--count', 100_000);
      const concurrency = wholeNumber(f.concurrency, '--concurrency', 10_000);
      const durationMs = f.duration === undefined ? undefined : parseDuration(f.duration, '--duration') * 1000;
      const dataDir = dataDirOf({ dataDir: cmd.optsWithGlobals<GlobalOptions>().dataDir ?? globals?.().dataDir });
      const inputs = await joinInputs(f, dataDir, Math.max(3600, Math.ceil((durationMs ?? 0) / 1000) + 600));
      const namePrefix = f.namePrefix ?? `hollow-${randomBytes(3).toString('hex')}-`;
      process.stderr.write(`Joining ${count} hollow nodes (${namePrefix}*) to ${inputs.server}, ${concurrency} at a time...\n`);
      const h = await startHollowNodes({
        ...inputs,
        count,
        concurrency,
        namePrefix,
        waitTimeoutMs: parseDuration(f.waitTimeout, '--wait-timeout') * 1000,
        leaseIntervalMs: parseDuration(f.leaseInterval, '--lease-interval') * 1000,
      });
      const stop = stopSignal(durationMs);
      const line = new ProgressLine();
      const stopTicker = progressTicker(h, line);
      let summary: HollowJoinSummary;
      try {
        if ((await Promise.race([h.joined.then(() => 'joined'), stop.stopped])) === 'joined') {
          const failure = hollowFailure(h.summary());
          if (failure) throw failure;
          if (fmt === 'table') line.log((describeSummary(h.summary()) + (durationMs === undefined ? 'Running; Ctrl-C stops the hollow nodes.\n' : '')).trimEnd());
          await stop.stopped;
        }
      } finally {
        stop.dispose();
        stopTicker();
        line.done();
        summary = h.summary();
        await h.close();
      }
      const out = { ...summary, server: h.server, namePrefix, leases: h.leaseStats() };
      if (fmt === 'json') printJson(out);
      else process.stdout.write(describeSummary(summary) + `Stopped ${summary.ready} hollow nodes.\n`);
    });
}
