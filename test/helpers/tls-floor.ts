// The TLS floor as the project guarantees it: a server in a child whose Node.js floor is lowered to TLS 1.0, and openssl clients of each version.
//
//   const s = await startFloorServer({ server: 'apiserver' });   // child with NODE_OPTIONS=--tls-min-v1.0
//   const r = await handshakeAt(s, 'TLSv1');                       // openssl s_client -tls1, SECLEVEL=0
//   assert.match(r.output, PROTOCOL_VERSION_ALERT);                // refused by the server's own minVersion
//   await s.stop();
//
// Node 20 refuses TLS 1.0/1.1 by itself, so a test in the test runner's own process passes whether or not the
// project sets minVersion; here Node's floor is down and only the project's stands between a client and TLS 1.0.
import assert from 'node:assert/strict';
import { fork, spawn } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../../src/util/wait.js';
import type { FloorReady, FloorSetup } from './tls-floor-child.js';

export type { FloorServer, FloorSetup } from './tls-floor-child.js';

export interface FloorServerChild extends FloorReady {
  pid: number;
  /** Everything the child printed, for failure messages. */
  output(): string;
  /** Asks the child to stop and clean up; kills it by PID if it has not exited within the deadline. */
  stop(): Promise<void>;
}

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'tls-floor-child.js');

export async function startFloorServer(setup: FloorSetup, timeoutMs = 30_000): Promise<FloorServerChild> {
  // NODE_OPTIONS, as an operator's environment would carry it (the runner's own options are kept).
  const nodeOptions = [process.env.NODE_OPTIONS, '--tls-min-v1.0'].filter(Boolean).join(' ');
  // execArgv: [] keeps the test runner's own flags (--test-timeout, ...) out of the child.
  const proc = fork(CHILD, [], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], execArgv: [], env: { ...process.env, NODE_OPTIONS: nodeOptions } });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exit = once(proc, 'exit');
  let ready: FloorReady | undefined;
  proc.on('message', (m) => (ready = m as FloorReady));
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    if (proc.connected) proc.send('close');
    const t = setTimeout(() => proc.kill('SIGKILL'), 15_000);
    await exit;
    clearTimeout(t);
  };
  proc.send(setup);
  try {
    const r = await waitFor(
      `the ${setup.server} child to listen`,
      () => {
        if (proc.exitCode !== null) throw new Error(`the child exited with ${proc.exitCode}: ${out}`);
        return ready;
      },
      timeoutMs,
      20,
    );
    return { ...r, pid: proc.pid!, output: () => out, stop };
  } catch (e) {
    proc.kill('SIGKILL');
    await exit;
    throw e;
  }
}

export interface SClientResult {
  status: number | null;
  output: string;
}

/** openssl s_client to 127.0.0.1:port; killed by PID after 10 s. */
export async function sClient(port: number, args: string[]): Promise<SClientResult> {
  const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  child.stdin.end();
  const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
  const [status] = (await once(child, 'close')) as [number | null];
  clearTimeout(t);
  return { status, output };
}

export type ProtocolVersion = 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';

const FLAG: Record<ProtocolVersion, string> = { TLSv1: '-tls1', 'TLSv1.1': '-tls1_1', 'TLSv1.2': '-tls1_2', 'TLSv1.3': '-tls1_3' };

/**
 * A client that offers only `version`, presenting a client certificate the server accepts so that nothing but the
 * version can be wrong. For TLS 1.0/1.1, SECLEVEL=0 lets this openssl offer the old version at all (and sign with
 * SHA-1), so a refusal is the server's. `extra` e.g. ['-alpn', 'h2'].
 */
export function handshakeAt(s: Pick<FloorReady, 'port' | 'certFile' | 'keyFile' | 'caFile'>, version: ProtocolVersion, extra: string[] = []): Promise<SClientResult> {
  const old = version === 'TLSv1' || version === 'TLSv1.1' ? ['-cipher', 'DEFAULT@SECLEVEL=0'] : [];
  return sClient(s.port, [FLAG[version], ...old, '-cert', s.certFile, '-key', s.keyFile, '-CAfile', s.caFile, ...extra]);
}

/** The protocol s_client negotiated ("New, TLSv1.3, Cipher is ..."), or undefined when none was. */
export function negotiated(output: string): string | undefined {
  return /^New, (TLSv1(?:\.[0-3])?), Cipher is (?!\(NONE\))/m.exec(output)?.[1];
}

/** What s_client printed for a refusal by version: the server's protocol_version alert (70), not any other failure. */
export const PROTOCOL_VERSION_ALERT = /alert protocol version/;

/**
 * The whole check, for one server kind: in a child with Node's floor at TLS 1.0, every `refused` version gets the
 * protocol_version alert and every `served` one is negotiated with the chain verified. `extra` e.g. ['-alpn', 'h2'].
 */
export async function assertFloor(setup: FloorSetup, refused: ProtocolVersion[], served: ProtocolVersion[], extra: string[] = []): Promise<void> {
  const s = await startFloorServer(setup);
  try {
    assert.equal(s.nodeDefaultMinVersion, 'TLSv1', "Node's floor in the child was not lowered: this test would prove nothing");
    for (const v of refused) {
      const r = await handshakeAt(s, v, extra);
      assert.equal(negotiated(r.output), undefined, `${v} was accepted:\n${r.output}`);
      assert.match(r.output, PROTOCOL_VERSION_ALERT, `${v} was not refused for its version:\n${r.output}`);
    }
    for (const v of served) {
      const r = await handshakeAt(s, v, extra);
      assert.equal(negotiated(r.output), v, r.output);
      assert.match(r.output, /Verify return code: 0 \(ok\)/, r.output);
    }
  } finally {
    await s.stop();
  }
}
