// Running the real openssl CLI from tests: CSRs in every algorithm, verification, TLS probes.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function openssl(args: string[], opts: { cwd?: string; input?: string } = {}): { status: number; stdout: string; stderr: string } {
  const r = spawnSync('openssl', args, { cwd: opts.cwd, input: opts.input ?? '', encoding: 'utf8', timeout: 30000 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export type OsslKey = 'p256' | 'p384' | 'rsa1024' | 'rsa2048' | 'rsa4096' | 'ed25519';

/** Make a private key with openssl; returns its path. */
export function opensslKey(dir: string, name: string, kind: OsslKey): string {
  const path = join(dir, `${name}.key`);
  const args: Record<OsslKey, string[]> = {
    p256: ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'],
    p384: ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384'],
    rsa1024: ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024'],
    rsa2048: ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'],
    rsa4096: ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:4096'],
    ed25519: ['genpkey', '-algorithm', 'ED25519'],
  };
  execFileSync('openssl', [...args[kind], '-out', path], { stdio: 'ignore' });
  return path;
}

/** `openssl req -new` with a subject like "/CN=x/O=y" and -addext values; returns the PEM. */
export function opensslCsr(dir: string, name: string, o: { key?: OsslKey; keyFile?: string; subj: string; addext?: string[] }): string {
  const keyFile = o.keyFile ?? opensslKey(dir, name, o.key ?? 'p256');
  const out = join(dir, `${name}.csr`);
  const args = ['req', '-new', '-key', keyFile, '-subj', o.subj, '-out', out];
  for (const e of o.addext ?? []) args.push('-addext', e);
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  return readFileSync(out, 'utf8');
}

/** `openssl verify -x509_strict -purpose P -CAfile roots [-untrusted chain] leaf`. */
export function opensslVerify(dir: string, o: { roots: string; leaf: string; untrusted?: string; purpose?: 'sslclient' | 'sslserver'; attime?: Date }): { ok: boolean; output: string } {
  writeFileSync(join(dir, 'v-roots.pem'), o.roots);
  writeFileSync(join(dir, 'v-leaf.pem'), o.leaf);
  const args = ['verify', '-x509_strict', '-CAfile', join(dir, 'v-roots.pem')];
  if (o.purpose) args.push('-purpose', o.purpose);
  if (o.untrusted) {
    writeFileSync(join(dir, 'v-untrusted.pem'), o.untrusted);
    args.push('-untrusted', join(dir, 'v-untrusted.pem'));
  }
  if (o.attime) args.push('-attime', String(Math.floor(o.attime.getTime() / 1000)));
  args.push(join(dir, 'v-leaf.pem'));
  const r = openssl(args);
  return { ok: r.status === 0 && /: OK/.test(r.stdout), output: r.stdout + r.stderr };
}
