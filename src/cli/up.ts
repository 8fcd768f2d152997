// `trustplane up`: the all-in-one local control plane: starts the CA service as a child, makes a demo cluster, prints how to use it.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import type { Endpoint } from '../ca/process.js';
import { caPaths } from '../util/datadir.js';
import { TrustplaneError } from '../util/errors.js';
import { waitFor } from '../util/wait.js';
import { printClusterDescription } from './clusters.js';
import { dataDirOf, fleetClient, type GlobalOptions } from './context.js';
import { printJson } from './output.js';

const BIN = fileURLToPath(new URL('../../../bin/trustplane.js', import.meta.url));

function progress(msg: string) {
  process.stderr.write(`==> ${msg}\n`);
}

export function startChild(args: string[], logFile: string): ChildProcess {
  const out = openSync(logFile, 'a', 0o600);
  return spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', out, out], env: process.env });
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

export function register(program: Command, globals: () => GlobalOptions): void {
  program
    .command('up')
    .description('start a local control plane on loopback (the CA service today), create a demo cluster, and print how to use it; Ctrl-C stops it')
    .option('--cluster <name>', 'name of the cluster to create when the data dir has none', 'demo')
    .option('-o, --output <format>', 'json: print the cluster as JSON once ready')
    .action(async (o: { cluster: string; output?: string }) => {
      const dataDir = dataDirOf(globals());
      const p = caPaths(dataDir);
      mkdirSync(p.dir, { recursive: true, mode: 0o700 });
      progress(`starting the CA service (data dir ${dataDir}, log ${p.log})`);
      const ca = startChild(['ca', 'serve', '--data-dir', dataDir], p.log);
      let exited = false;
      ca.once('exit', () => (exited = true));
      const stopAll = async () => {
        progress('stopping');
        await stopChild(ca);
      };
      try {
        await waitFor('the CA service to start', () => {
          if (exited) throw new TrustplaneError('Unavailable', `the CA service exited during start-up; see ${p.log}`);
          if (!existsSync(p.endpoint)) return undefined;
          const ep = JSON.parse(readFileSync(p.endpoint, 'utf8')) as Endpoint;
          return ep.pid === ca.pid ? ep : undefined;
        }, 60000);
        const client = fleetClient(dataDir);
        try {
          let clusters = await client.listClusters();
          if (clusters.length === 0) {
            progress(`creating cluster ${o.cluster}: cluster root CA, etcd API CA, etcd peer CA`);
            await client.createCluster({ name: o.cluster });
            clusters = await client.listClusters();
          } else progress(`resuming ${clusters.length} existing cluster(s)`);
          if (o.output === 'json') printJson(clusters);
          else
            for (const c of clusters) {
              printClusterDescription(c);
              process.stdout.write('\n');
            }
        } finally {
          client.close();
        }
        process.stdout.write(
          [
            'The control plane is up. Try, in another terminal:',
            `  trustplane --data-dir ${dataDir} clusters list`,
            `  trustplane --data-dir ${dataDir} clusters describe ${o.cluster}`,
            `  trustplane --data-dir ${dataDir} clusters describe ${o.cluster} --bundle root > root.pem && openssl x509 -in root.pem -noout -text`,
            `  trustplane --data-dir ${dataDir} ca status`,
            'Press Ctrl-C to stop.',
            '',
          ].join('\n'),
        );
      } catch (e) {
        await stopAll();
        throw e;
      }
      await new Promise<void>((resolve) => {
        const onSignal = () => void stopAll().then(resolve);
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        ca.once('exit', (code, signal) => {
          progress(`the CA service exited (${signal ?? code}); see ${p.log}`);
          process.exitCode = 1;
          resolve();
        });
      });
    });
}
