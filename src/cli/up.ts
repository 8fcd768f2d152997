// `trustplane up`: the all-in-one local control plane: the CA service and the host as supervised children, a cluster, its kubeconfig, how to use it.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { buildKubeconfig } from '../fleet/kubeconfig.js';
import { caPaths, clusterPaths, defaultDataDir, hostPaths } from '../util/datadir.js';
import { ensurePrivateDir, openPrivateFile, writeFileAtomic } from '../util/files.js';
import { invalid, TrustplaneError } from '../util/errors.js';
import { nodePaths } from '../node/state.js';
import { localNodesDir, startLocalNodes, waitForNodes, type LocalNode } from './up-nodes.js';
import { waitFor } from '../util/wait.js';
import { adminKubeconfigEntry, printClusterDescription } from './clusters.js';
import { dataDirOf, fleetApi, using, type GlobalOptions } from './context.js';
import { printJson } from './output.js';
import { ProgressLine } from './progress.js';
import { describeExit, SupervisedChild } from './up-supervisor.js';

const NODES_READY_TIMEOUT_MS = 120_000;
const BIN = fileURLToPath(new URL('../../../bin/trustplane.js', import.meta.url));

function progress(msg: string) {
  process.stderr.write(`==> ${msg}\n`);
}

export function startChild(args: string[], logFile: string, env: Record<string, string> = {}): ChildProcess {
  const out = openPrivateFile(logFile);
  return spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', out, out], env: { ...process.env, ...env } });
}

export function stopChild(child: ChildProcess, timeoutMs = 10000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Starts `args` as a child and waits until it has written its endpoint file naming its own pid. */
async function startService(what: string, args: string[], endpointFile: string, logFile: string): Promise<ChildProcess> {
  const child = startChild(args, logFile);
  // A child that dies during start-up is told at once, not after the wait for its endpoint has run out.
  let exit: string | undefined;
  child.once('exit', (code, signal) => (exit = describeExit(code, signal)));
  try {
    const ok = await waitFor(what, () => {
      if (exit) return 'exited';
      if (!existsSync(endpointFile)) return undefined;
      const ep = JSON.parse(readFileSync(endpointFile, 'utf8')) as { pid: number };
      return ep.pid === child.pid ? 'serving' : undefined;
    }, 60000);
    if (ok === 'exited') throw new TrustplaneError('Unavailable', `${what} exited during start-up (${exit}); see ${logFile}`);
  } catch (e) {
    await stopChild(child);
    throw e;
  }
  return child;
}

export function register(program: Command, globals: () => GlobalOptions): void {
  program
    .command('up')
    .description('start a local control plane on loopback (CA service and control plane host as child processes), create a cluster if the data dir has none, write its admin kubeconfig, and print how to use it; Ctrl-C stops everything')
    .option('--cluster <name>', 'name of the cluster to create when the data dir has none', 'demo')
    .option('--nodes <n>', 'local node agents to run for the cluster (child processes; 0 for none)', '3')
    .option('-o, --output <format>', 'json: print the clusters as JSON once ready')
    .action(async (o: { cluster: string; nodes: string; output?: string }) => {
      if (!/^\d+$/.test(o.nodes) || Number(o.nodes) > 100)
        throw invalid(`--nodes must be a whole number from 0 to 100, not "${o.nodes}"`, 'for more nodes, use `trustplane nodes simulate --count N`');
      const nodeCount = Number(o.nodes);
      const dataDir = dataDirOf(globals());
      const cp = caPaths(dataDir);
      const hp = hostPaths(dataDir);
      ensurePrivateDir(dataDir);
      ensurePrivateDir(cp.dir);
      ensurePrivateDir(hp.dir);
      let stopping: Promise<void> | undefined;
      let gaveUp: (() => void) | undefined;
      const onGaveUp = () => {
        if (stopping) return;
        process.exitCode = 1;
        gaveUp?.();
        void stopAll();
      };
      // Both are restarted when they die: the nodes keep talking to the host through a CA restart, and come back to a
      // restarted host on their own (its API servers and tunnel servers keep their ports).
      const ca = new SupervisedChild({ what: 'the CA service', logFile: cp.log, start: () => startService('the CA service', ['ca', 'serve', '--data-dir', dataDir], cp.endpoint, cp.log), stopChild, progress, onGaveUp });
      // A restarted host keeps the metrics port printed below; should it fail to start, the next attempt takes any port
      // (another process may have taken that one meanwhile), and the new URL is printed.
      let metricsPort = '0';
      let printedMetricsPort: string | undefined;
      const startHost = async () => {
        let child: ChildProcess;
        try {
          child = await startService('the control plane host', ['serve', '--data-dir', dataDir, '--metrics-port', metricsPort], hp.endpoint, hp.log);
        } catch (e) {
          metricsPort = '0';
          throw e;
        }
        const url = (JSON.parse(readFileSync(hp.endpoint, 'utf8')) as { metricsUrl?: string }).metricsUrl;
        const port = url ? new URL(url).port : '0';
        if (printedMetricsPort && port !== printedMetricsPort) progress(`the metrics URL is now ${url}`);
        metricsPort = port;
        return child;
      };
      const host = new SupervisedChild({
        what: 'the control plane host',
        logFile: hp.log,
        start: startHost,
        stopChild,
        progress,
        onGaveUp,
      });
      const nodeChildren: ChildProcess[] = [];
      const stopAll = () =>
        (stopping ??= (async () => {
          progress('stopping');
          host.expectStop();
          ca.expectStop();
          for (const c of [...nodeChildren].reverse()) await stopChild(c);
          await host.stop();
          await ca.stop();
        })());
      const kubeconfigs: string[] = [];
      let localNodes: LocalNode[] = [];
      // A signal during start-up stops what has started so far: no child outlives `up`.
      const early = () => void stopAll().then(() => process.exit(130));
      process.once('SIGINT', early);
      process.once('SIGTERM', early);
      try {
        progress(`starting the CA service (data dir ${dataDir}, log ${cp.log})`);
        await ca.start();
        progress(`the CA service is running (pid ${ca.pid})`);
        progress(`starting the control plane host (log ${hp.log})`);
        await host.start();
        progress(`the control plane host is running (pid ${host.pid})`);
        printedMetricsPort = metricsPort;
        await using(fleetApi(dataDir), async (f) => {
          let clusters = await f.list();
          if (clusters.length === 0) {
            progress(`creating cluster ${o.cluster}: its CAs, state store, API server, controllers and default node pool`);
            await f.create({ name: o.cluster });
            clusters = await f.list();
          } else {
            progress(`resuming ${clusters.length} existing cluster(s): ${clusters.map((c) => c.name).join(', ')}`);
            const names = clusters.map((c) => c.name);
            clusters = await waitFor('the clusters to run', async () => {
              const now = (await f.list()).filter((c) => names.includes(c.name));
              return now.every((c) => c.status !== 'PROVISIONING') ? now : undefined;
            }, 60000, 200).catch(async () => {
              const now = await f.list();
              for (const c of now) if (c.status === 'PROVISIONING') progress(`cluster ${c.name} is still coming up: ${c.statusMessage}`);
              return now;
            });
          }
          for (const c of clusters) {
            if (c.status !== 'RUNNING') continue;
            const path = clusterPaths(dataDir, c.name).adminKubeconfig;
            writeFileAtomic(path, buildKubeconfig(await adminKubeconfigEntry(f, c.name)), 0o600);
            kubeconfigs.push(path);
          }
          const target = clusters.find((c) => c.name === o.cluster && c.status === 'RUNNING') ?? clusters.find((c) => c.status === 'RUNNING');
          if (target && nodeCount > 0) {
            progress(`starting ${nodeCount} local node agent(s) for cluster ${target.name} (node data dirs in ${localNodesDir(dataDir, target.name)})`);
            // While they join: a count with the time left, redrawn in place on a terminal; each node's arrival stays above it.
            const line = new ProgressLine();
            const say = (msg: string) => line.log(`==> ${msg}`);
            let late: string[];
            try {
              localNodes = await startLocalNodes(f, dataDir, target.name, nodeCount, startChild, say);
              nodeChildren.push(...localNodes.map((n) => n.child));
              late = await waitForNodes(f, target.name, localNodes, NODES_READY_TIMEOUT_MS, say, line);
            } finally {
              line.done();
            }
            if (late.length) progress(`not ready after ${NODES_READY_TIMEOUT_MS / 1000} s: ${late.join(', ')}; their logs are agent.log in their node data dirs`);
          }
          if (o.output === 'json') printJson(await f.list());
          else
            for (const c of await f.list()) {
              printClusterDescription(c);
              process.stdout.write('\n');
            }
        });
        const first = o.output === 'json' ? undefined : kubeconfigs[0];
        // The command as this user can type it: from a checkout (npm start) through npx; the data dir only when not the default.
        const fromCheckout = resolve(BIN).startsWith(resolve(process.cwd()) + sep);
        const { metricsUrl, consoleUrl } = existsSync(hp.endpoint) ? (JSON.parse(readFileSync(hp.endpoint, 'utf8')) as { metricsUrl?: string; consoleUrl?: string }) : {};
        const tp = `${fromCheckout ? 'npx trustplane' : 'trustplane'}${resolve(dataDir) === resolve(defaultDataDir()) ? '' : ` --data-dir ${dataDir}`}`;
        if (o.output !== 'json' && !first) process.stdout.write('The control plane is up, but no cluster is serving yet (see above).\nPress Ctrl-C to stop.\n');
        if (first) {
          const name = first.split('/').slice(-2)[0];
          process.stdout.write(
            [
              `The control plane is up. The admin kubeconfig is ${first}`,
              ...(metricsUrl
                ? [
                    `Prometheus metrics (CA expiry, rotations, nodes per generation): ${metricsUrl}`,
                    `  HTTPS, for the bearer token in ${hp.metricsToken} or the fleet administrator's certificate (${cp.fleetCert}); the CA is ${cp.serviceCa}:`,
                    `  curl --cacert ${cp.serviceCa} -H "Authorization: Bearer $(cat ${hp.metricsToken})" ${metricsUrl}`,
                  ]
                : []),
              ...(consoleUrl
                ? [`Web console (clusters, CA timelines, rotation progress, nodes): ${consoleUrl}`, `  log in with the token in ${hp.metricsToken}; its TLS certificate is issued by ${cp.serviceCa}`]
                : []),
              'Try, in another terminal:',
              `  export KUBECONFIG=${first}`,
              '  kubectl get nodes',
              '  kubectl get csr',
              '  kubectl auth whoami',
              ...(localNodes.length
                ? [`  ${tp} nodes list`, `  ${tp} nodes logs ${localNodes[0].name} --tail 20`, `  ${tp} nodes health ${localNodes[0].name}`]
                : []),
              `  ${tp} clusters describe ${name}`,
              `  ${tp} node-pools bootstrap-token default-pool --cluster ${name}`,
              `  ${tp} clusters get-credentials ${name}    # merges into ~/.kube/config`,
              'Press Ctrl-C to stop.',
              '',
            ].join('\n'),
          );
        }
      } catch (e) {
        await stopAll();
        throw e;
      }
      process.off('SIGINT', early);
      process.off('SIGTERM', early);
      await new Promise<void>((resolve) => {
        const onSignal = () => void stopAll().then(resolve);
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        gaveUp = () => void stopAll().then(resolve);
        for (const n of localNodes)
          n.child.once('exit', (code, signal) => {
            if (!stopping) progress(`node agent ${n.name} exited (${signal ?? code}); see ${nodePaths(n.dataDir).log}`);
          });
      });
    });
}
