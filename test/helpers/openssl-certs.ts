// Test certificates made with the openssl CLI: an independent source of CAs and leaves for tests of servers.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PemPair {
  cert: string;
  key: string;
  certFile: string;
  keyFile: string;
}

export interface OpensslCa extends PemPair {
  dir: string;
  /** Issue a leaf signed by this CA. `sans` like ["DNS:localhost","IP:127.0.0.1"]. */
  issue(name: string, opts: { cn: string; o?: string; sans?: string[]; eku: Array<'serverAuth' | 'clientAuth'>; days?: number }): PemPair;
}

function run(args: string[], cwd: string) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Temporary directories made here for CAs: removed when the test process exits, whoever forgot them. */
const made: string[] = [];
let exitHook = false;
function caTempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tp-ossl-'));
  made.push(dir);
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const d of made) rmSync(d, { recursive: true, force: true });
    });
  }
  return dir;
}

/** A P-256 CA made by openssl in a fresh temporary directory (removed at exit, if not before). */
export function makeOpensslCa(cn = 'test CA', dir = caTempDir()): OpensslCa {
  run(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key'], dir);
  run(['req', '-x509', '-new', '-key', 'ca.key', '-subj', `/CN=${cn}`, '-days', '30', '-sha256',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', 'ca.crt'], dir);
  const ca: OpensslCa = {
    dir,
    cert: readFileSync(join(dir, 'ca.crt'), 'utf8'),
    key: readFileSync(join(dir, 'ca.key'), 'utf8'),
    certFile: join(dir, 'ca.crt'),
    keyFile: join(dir, 'ca.key'),
    issue(name, o) {
      run(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`], dir);
      // PKCS#8 form, which every client (etcdctl, grpc-js, node:tls) reads.
      run(['pkcs8', '-topk8', '-nocrypt', '-in', `${name}.key`, '-out', `${name}.p8.key`], dir);
      const subj = `/CN=${o.cn}` + (o.o ? `/O=${o.o}` : '');
      run(['req', '-new', '-key', `${name}.key`, '-subj', subj, '-out', `${name}.csr`], dir);
      const ext = [
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature',
        `extendedKeyUsage=${o.eku.join(',')}`,
        ...(o.sans && o.sans.length ? [`subjectAltName=${o.sans.join(',')}`] : []),
      ].join('\n');
      writeFileSync(join(dir, `${name}.ext`), ext + '\n');
      run(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
        '-days', String(o.days ?? 7), '-sha256', '-extfile', `${name}.ext`, '-out', `${name}.crt`], dir);
      return {
        cert: readFileSync(join(dir, `${name}.crt`), 'utf8'),
        key: readFileSync(join(dir, `${name}.p8.key`), 'utf8'),
        certFile: join(dir, `${name}.crt`),
        keyFile: join(dir, `${name}.p8.key`),
      };
    },
  };
  return ca;
}
