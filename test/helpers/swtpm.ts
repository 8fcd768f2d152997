// A software TPM (Debian's swtpm) for tests: its own state dir and loopback ports, reached by tpm2-tools through the
// swtpm TCTI; stopped by its PID, its state removed.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../../src/util/wait.js';
import { killChild } from './cli.js';

function manufacture(stateDir: string, caDir: string): void {
  mkdirSync(caDir, { recursive: true });
  const localca = join(caDir, 'localca.conf');
  writeFileSync(localca, ['statedir', 'signingkey signkey.pem', 'issuercert issuercert.pem', 'certserial certserial'].map((l) => {
    const [k, f] = l.split(' ');
    return `${k} = ${f ? join(caDir, f) : caDir}`;
  }).join('\n') + '\n');
  const setup = join(caDir, 'setup.conf');
  writeFileSync(setup, `create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = ${localca}\ncreate_certs_tool_options = /etc/swtpm-localca.options\nactive_pcr_banks = sha256\n`);
  const r = spawnSync('swtpm_setup', ['--tpm2', '--tpmstate', stateDir, '--create-ek-cert', '--config', setup, '--overwrite'], { encoding: 'utf8', timeout: 60000 });
  if (r.status !== 0) throw new Error(`swtpm_setup failed: ${r.stdout}${r.stderr}`);
}

export interface SoftTpm {
  tcti: string;
  child: ChildProcess;
  /** Runs a tpm2-tools command on this TPM; throws with its stderr when it fails. */
  tool(cmd: string, args: string[]): string;
  stop(): Promise<void>;
}

/**
 * With `ekCertCa` (a directory), the TPM is first "manufactured" by swtpm_setup with an RSA EK certificate in NV
 * 0x01c00002, signed by swtpm-localca's CA kept in that directory (created on first use: issuercert.pem signed by
 * swtpm-localca-rootca-cert.pem).
 */
export async function startSwtpm(o: { ekCertCa?: string } = {}): Promise<SoftTpm> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = 20000 + 2 * Math.floor(Math.random() * 10000);
    const dir = mkdtempSync(join(tmpdir(), 'tp-swtpm-'));
    if (o.ekCertCa) manufacture(dir, o.ekCertCa);
    const child = spawn('swtpm', ['socket', '--tpm2', '--server', `type=tcp,port=${port},bindaddr=127.0.0.1`, '--ctrl', `type=tcp,port=${port + 1},bindaddr=127.0.0.1`, '--tpmstate', `dir=${dir}`, '--flags', 'startup-clear'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const tcti = `swtpm:host=127.0.0.1,port=${port}`;
    const tool = (cmd: string, args: string[]) => {
      const r = spawnSync(cmd, args, { env: { ...process.env, TPM2TOOLS_TCTI: tcti }, encoding: 'utf8', timeout: 30000 });
      if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
      return r.stdout;
    };
    const stop = async () => {
      await killChild(child, 'SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    };
    try {
      await waitFor('swtpm to answer', () => {
        if (child.exitCode !== null) throw new Error(`swtpm exited: ${err}`);
        const r = spawnSync('tpm2_getrandom', ['--hex', '4'], { env: { ...process.env, TPM2TOOLS_TCTI: tcti }, encoding: 'utf8', timeout: 5000 });
        return r.status === 0 || undefined;
      }, 10000, 100);
      return { tcti, child, tool, stop };
    } catch (e) {
      await stop();
      if (attempt === 4) throw e;
    }
  }
  throw new Error('unreachable');
}
