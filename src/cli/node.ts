// `trustplane node ...`: the node agent on this machine — join a cluster with a bootstrap token, or run again on the credentials it has.
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { DEFAULT_WAIT_TIMEOUT_MS, joinNode, startNodeAgent, type NodeAgent, type NodeAgentOptions } from '../node/agent.js';
import { formatDuration, parseDuration } from '../util/duration.js';
import { TrustplaneError } from '../util/errors.js';
import type { GlobalOptions } from './context.js';
import { safe } from './output.js';
import { TpmDriver } from '../tpm/driver.js';
import { DEFAULT_SHIELDED_PCRS, checkPcrList, ekFingerprint } from '../tpm/enrollment.js';

/** Where a node keeps its credentials unless told: $TRUSTPLANE_NODE_DATA_DIR, else ./.trustplane-node. */
export function defaultNodeDataDir(): string {
  return resolve(process.env.TRUSTPLANE_NODE_DATA_DIR || './.trustplane-node');
}

interface RunFlags {
  server?: string;
  token?: string;
  caCertHash: string[];
  caFile?: string;
  name?: string;
  nodeDataDir?: string;
  waitTimeout: string;
  verbose?: boolean;
  shielded?: boolean;
  tcti?: string;
  pool?: string;
}

/** The TPM's TCTI: --tcti, else $TPM2TOOLS_TCTI, else the kernel's resource manager. */
function tctiOf(f: { tcti?: string }): string {
  return f.tcti || process.env.TPM2TOOLS_TCTI || 'device:/dev/tpmrm0';
}

const collect = (v: string, prev: string[]) => [...prev, v];

function agentOptions(f: RunFlags): NodeAgentOptions {
  return {
    dataDir: f.nodeDataDir ?? defaultNodeDataDir(),
    server: f.server,
    token: f.token ?? (f.shielded ? undefined : process.env.TRUSTPLANE_BOOTSTRAP_TOKEN || undefined),
    ...(f.shielded ? { shielded: { tcti: tctiOf(f), ...(f.pool ? { pool: f.pool } : {}) } } : {}),
    caCertHash: f.caCertHash,
    caFile: f.caFile,
    nodeName: f.name,
    waitTimeoutMs: parseDuration(f.waitTimeout, '--wait-timeout') * 1000,
    logToStderr: !!f.verbose,
  };
}

/** Runs the agent until SIGINT or SIGTERM (then stops it cleanly), or until it fails (then the error is thrown). */
async function runUntilSignal(agent: NodeAgent): Promise<void> {
  const s = agent.status();
  process.stdout.write(
    `Node ${s.nodeName} is part of the cluster at ${s.server}.\n` +
      `  client certificate ${s.clientCertificate.serial}, valid until ${s.clientCertificate.notAfter}, renewed around ${s.clientCertificate.renewAt}\n` +
      (s.servingCertificate
        ? `  serving certificate ${s.servingCertificate.serial}, valid until ${s.servingCertificate.notAfter}\n`
        : safe`  no serving certificate yet (${s.servingError ?? 'pending'}); the node endpoint waits for it` + '\n') +
      (s.tunnel ? `  reverse tunnel to ${s.tunnel.url}\n` : '  no tunnel server is known for this cluster\n') +
      `  state and log (agent.log) in ${agent.dataDir}\n` +
      'Running; Ctrl-C stops the agent (the node keeps its credentials).\n',
  );
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
  let onSignal: (() => void) | undefined;
  try {
    await Promise.race([
      agent.done,
      new Promise<void>((r) => {
        onSignal = () => r();
        for (const sig of signals) process.once(sig, onSignal);
      }),
    ]);
  } finally {
    for (const sig of signals) if (onSignal) process.off(sig, onSignal);
    await agent.stop();
  }
  process.stdout.write(`Node agent ${agent.nodeName} stopped.\n`);
}

export function registerNodeCommands(program: Command): void {
  const node = program.command('node').description("the node agent: join this machine to a cluster and keep its credentials current");

  node
    .command('join')
    .description('join a cluster: authenticate it by its CA hash, get a client certificate with the bootstrap token, register the Node, then run the agent')
    .requiredOption('--server <url>', 'the API server, https://HOST:PORT')
    .option('--token <token>', 'bootstrap token <id>.<secret> (`trustplane node-pools bootstrap-token POOL --cluster CLUSTER` makes one); default $TRUSTPLANE_BOOTSTRAP_TOKEN, which keeps it out of the process list')
    .option('--ca-cert-hash <sha256:hex>', "the cluster root CA's public key hash, as kubeadm's --discovery-token-ca-cert-hash (repeatable)", collect, [] as string[])
    .option('--ca-file <file>', 'a PEM file with the cluster root CA, instead of --ca-cert-hash')
    .option('--name <name>', "the node's name (default: the data dir's, else this machine's host name)")
    .option('--node-data-dir <dir>', 'where the node keeps its credentials and log (default ./.trustplane-node or $TRUSTPLANE_NODE_DATA_DIR)')
    .option('--wait-timeout <duration>', 'how long to wait for each certificate to be approved and issued', `${DEFAULT_WAIT_TIMEOUT_MS / 60_000}m`)
    .option('--shielded', "join by TPM attestation instead of a token (the node pool is shielded and this TPM's EK is enrolled for --name)")
    .option('--tcti <tcti>', 'how tpm2-tools reach the TPM, e.g. swtpm:host=127.0.0.1,port=2321 (default $TPM2TOOLS_TCTI, else device:/dev/tpmrm0)')
    .option('--pool <pool>', "with --shielded, for a pool that enrolls TPMs by EK certificate: the pool (the TPM's EK certificate is sent)")
    .option('-v, --verbose', 'also write the agent log (JSON lines) to standard error')
    .action(async (f: RunFlags) => {
      if (f.pool && !f.shielded) throw new TrustplaneError('Invalid', '--pool is for shielded nodes', 'add --shielded');
      if (f.tcti && !f.shielded) throw new TrustplaneError('Invalid', '--tcti is for shielded nodes', 'add --shielded');
      const o = agentOptions(f);
      process.stderr.write(`Joining the cluster at ${f.server} (waiting up to ${formatDuration((o.waitTimeoutMs ?? 0) / 1000)} for each certificate)...\n`);
      await runUntilSignal(await joinNode(o));
    });

  registerTpmCommands(node);

  node
    .command('start')
    .description('run the agent of a node that has joined before, on the credentials in its data dir')
    .option('--node-data-dir <dir>', 'the node data dir (default ./.trustplane-node or $TRUSTPLANE_NODE_DATA_DIR)')
    .option('--token <token>', 'a new bootstrap token, kept to join again should the client certificate have lapsed (default $TRUSTPLANE_BOOTSTRAP_TOKEN)')
    .option('--wait-timeout <duration>', 'how long to wait for each certificate to be approved and issued', `${DEFAULT_WAIT_TIMEOUT_MS / 60_000}m`)
    .option('-v, --verbose', 'also write the agent log (JSON lines) to standard error')
    .action(async (f: RunFlags) => {
      // A node that has joined keeps trying while its control plane is unreachable (restarting, say), as a kubelet does.
      const o = agentOptions({ ...f, caCertHash: [] });
      let agent: NodeAgent | undefined;
      let stop = false;
      const onSignal = () => (stop = true);
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      for (let attempt = 0; !agent; attempt++) {
        try {
          agent = await startNodeAgent(o);
        } catch (e) {
          if (!(e instanceof TrustplaneError && e.reason === 'Unavailable') || stop) throw e;
          const wait = Math.min(30_000, 1000 * 2 ** Math.min(attempt, 5)) * (0.5 + Math.random() / 2);
          process.stderr.write(safe`${e.message}` + `; trying again in ${(wait / 1000).toFixed(1)} s\n`);
          await new Promise((r) => setTimeout(r, wait));
          if (stop) throw e;
        }
      }
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await runUntilSignal(agent);
    });
}

function registerTpmCommands(node: Command): void {
  const tpm = node.command('tpm').description("this machine's TPM, for shielded nodes: what an administrator enrolls");
  tpm
    .command('ek')
    .description("print the TPM's endorsement key (PEM public key): pass it to `trustplane node-pools enroll POOL --ek-pub FILE --node-name NAME`")
    .option('--tcti <tcti>', 'how tpm2-tools reach the TPM (default $TPM2TOOLS_TCTI, else device:/dev/tpmrm0)')
    .action(async (f: { tcti?: string }) => {
      const d = new TpmDriver(tctiOf(f));
      try {
        const pem = await d.ekPublicPem();
        process.stdout.write(pem.endsWith('\n') ? pem : `${pem}\n`);
        process.stderr.write(`EK fingerprint sha256:${ekFingerprint(pem)}\n`);
      } finally {
        d.close();
      }
    });
  tpm
    .command('pcrs')
    .description("print the TPM's SHA-256 PCR values as JSON: pass the file to `trustplane node-pools enroll ... --pcr-values FILE`")
    .option('--tcti <tcti>', 'how tpm2-tools reach the TPM (default $TPM2TOOLS_TCTI, else device:/dev/tpmrm0)')
    .option('--pcrs <list>', 'PCR indices', DEFAULT_SHIELDED_PCRS.join(','))
    .action(async (f: { tcti?: string; pcrs: string }) => {
      const d = new TpmDriver(tctiOf(f));
      try {
        process.stdout.write(`${JSON.stringify(await d.readPcrs(checkPcrList(f.pcrs.split(',').map((x) => Number(x.trim())))), null, 2)}\n`);
      } finally {
        d.close();
      }
    });
}

/** The command-group convention of main.ts (`group.register(program, globals)`). */
export function register(program: Command, _globals: () => GlobalOptions): void {
  registerNodeCommands(program);
}
