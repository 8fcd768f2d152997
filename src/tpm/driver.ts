// The agent's side of TPM attestation, over Debian's tpm2-tools: the EK, a fresh attestation key under it, credential
// activation and PCR quotes. The TPM is reached through a TCTI (`swtpm:host=127.0.0.1,port=2321`, `device:/dev/tpmrm0`).
//
// Without a resource manager (swtpm, /dev/tpm0) transient objects stay loaded after each tool exits and the TPM runs
// out of slots: every step flushes them, and the next step loads the saved contexts again.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TrustplaneError } from '../util/errors.js';
import { Mutex } from '../util/mutex.js';
import { trimDer } from './ek-certificate.js';
import type { PcrValues } from './quote.js';

export interface AttestationKey {
  /** TPM2B_PUBLIC of the AK. */
  publicArea: Buffer;
  /** nameAlg || H(TPMT_PUBLIC). */
  name: Buffer;
}

export interface TpmQuote {
  attest: Buffer;
  signature: Buffer;
}

export class TpmDriver {
  private readonly dir: string;
  private readonly lock = new Mutex();
  private closed = false;

  constructor(
    readonly tcti: string,
    /** Each tool call is bounded by this. */
    private readonly timeoutMs = 30_000,
  ) {
    // Object contexts are only usable inside this TPM; they are kept out of the node data dir all the same.
    this.dir = mkdtempSync(join(tmpdir(), 'trustplane-tpm-'));
  }

  private path(f: string): string {
    return join(this.dir, f);
  }

  private tool(cmd: string, args: string[], o: { noTpm?: boolean } = {}): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile(cmd, args, { env: { ...process.env, TPM2TOOLS_TCTI: o.noTpm ? 'none' : this.tcti }, timeout: this.timeoutMs, encoding: 'utf8', maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') return reject(new TrustplaneError('Unavailable', `${cmd} is not installed`, 'install tpm2-tools (`apt-get install tpm2-tools`)'));
        reject(new TrustplaneError('Unavailable', `${cmd} failed on the TPM at ${this.tcti}: ${(stderr || err.message).trim().split('\n').slice(-3).join(' / ')}`, 'is the TPM reachable through --tcti (a running swtpm, or device:/dev/tpmrm0)?'));
      });
    });
  }

  /** Flushes transient objects and sessions left loaded (no resource manager). */
  private async flush(): Promise<void> {
    await this.tool('tpm2_flushcontext', ['-t']);
    await this.tool('tpm2_flushcontext', ['-s']);
  }

  private run<T>(f: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new TrustplaneError('Unavailable', 'the TPM driver is closed'));
    return this.lock.run(async () => {
      try {
        return await f();
      } finally {
        await this.flush().catch(() => undefined);
      }
    });
  }

  /** The endorsement key (TCG default RSA template) as a PEM public key: what an operator enrolls. */
  ekPublicPem(): Promise<string> {
    return this.run(async () => {
      await this.tool('tpm2_createek', ['-c', this.path('ek.ctx'), '-G', 'rsa', '-u', this.path('ek.pem'), '-f', 'pem']);
      return readFileSync(this.path('ek.pem'), 'utf8');
    });
  }

  /** The EK certificate the manufacturer stored in NV index 0x01c00002 (RSA EK), DER; undefined when there is none. */
  ekCertificate(): Promise<Buffer | undefined> {
    return this.run(async () => {
      try {
        await this.tool('tpm2_nvread', ['0x01c00002', '-o', this.path('ek.crt')]);
      } catch {
        return undefined;
      }
      return trimDer(readFileSync(this.path('ek.crt')));
    });
  }

  /** A new attestation key under the EK (restricted RSA signing key, RSASSA-SHA256); replaces the one before. */
  createAk(): Promise<AttestationKey> {
    return this.run(async () => {
      await this.tool('tpm2_createek', ['-c', this.path('ek.ctx'), '-G', 'rsa', '-u', this.path('ek.pem'), '-f', 'pem']);
      await this.flush();
      await this.tool('tpm2_createak', ['-C', this.path('ek.ctx'), '-c', this.path('ak.ctx'), '-G', 'rsa', '-g', 'sha256', '-s', 'rsassa', '-u', this.path('ak.pub'), '-n', this.path('ak.name'), '-r', this.path('ak.priv')]);
      return { publicArea: readFileSync(this.path('ak.pub')), name: readFileSync(this.path('ak.name')) };
    });
  }

  /** ActivateCredential: the secret of a credential made for our AK against our EK (tpm2-tools' credential file). */
  activateCredential(credentialFile: Buffer): Promise<Buffer> {
    return this.run(async () => {
      writeFileSync(this.path('cred.blob'), credentialFile, { mode: 0o600 });
      const session = this.path('session.ctx');
      await this.tool('tpm2_startauthsession', ['--policy-session', '-S', session]);
      await this.tool('tpm2_policysecret', ['-S', session, '-c', 'e']);
      try {
        await this.tool('tpm2_activatecredential', ['-c', this.path('ak.ctx'), '-C', this.path('ek.ctx'), '-i', this.path('cred.blob'), '-o', this.path('secret.bin'), '-P', `session:${session}`]);
        return readFileSync(this.path('secret.bin'));
      } finally {
        rmSync(this.path('secret.bin'), { force: true });
      }
    });
  }

  /** A quote of SHA-256 PCRs `pcrs` with `qualifyingData`, signed by the AK. */
  quote(qualifyingData: Buffer, pcrs: number[]): Promise<TpmQuote> {
    return this.run(async () => {
      await this.tool('tpm2_quote', ['-c', this.path('ak.ctx'), '-l', `sha256:${pcrs.join(',')}`, '-q', qualifyingData.toString('hex'), '-m', this.path('quote.msg'), '-s', this.path('quote.sig'), '-g', 'sha256']);
      return { attest: readFileSync(this.path('quote.msg')), signature: readFileSync(this.path('quote.sig')) };
    });
  }

  /** SHA-256 PCR values, index → hex. */
  readPcrs(pcrs: number[]): Promise<PcrValues> {
    return this.run(async () => parsePcrRead(await this.tool('tpm2_pcrread', [`sha256:${pcrs.join(',')}`])));
  }

  /** tpm2_pcrextend (tests: a changed boot state). */
  extendPcr(pcr: number, digestHex: string): Promise<void> {
    return this.run(async () => void (await this.tool('tpm2_pcrextend', [`${pcr}:sha256=${digestHex}`])));
  }

  close(): void {
    this.closed = true;
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** `tpm2_pcrread sha256:...` output ("  sha256:\n    0 : 0x<hex>") as index → lower-case hex. */
export function parsePcrRead(out: string): PcrValues {
  const values: PcrValues = {};
  let bank = '';
  for (const line of out.split('\n')) {
    const b = /^\s*(sha\d+):\s*$/.exec(line);
    if (b) bank = b[1];
    const m = /^\s*(\d+)\s*:\s*0x([0-9A-Fa-f]+)\s*$/.exec(line);
    if (m && bank === 'sha256') values[m[1]] = m[2].toLowerCase();
  }
  return values;
}
