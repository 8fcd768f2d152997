// The node data directory: what a node keeps across restarts, laid out here and nowhere else.
//
//   config.json                     server URL, node name, tunnel URL, CA hashes (nothing secret)
//   bootstrap-token                 the join token, kept to re-join if the client certificate lapses (0600)
//   agent.log                       the agent's own log, served at /logs (0600)
//   pki/ca.crt                      the cluster root CA bundle the node trusts
//   pki/kubelet-client-current.pem  client certificate chain + its key (0600), as the kubelet keeps it
//   pki/kubelet-server-current.pem  serving certificate chain + its key (0600)
//   pki/kubelet-*.key.tmp           the key of a CSR in flight, so a restart resumes the same request (0600)
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseCertificate, pemDecodeAll, type ParsedCertificate } from '../pki/index.js';
import { TrustplaneError } from '../util/errors.js';
import { writeFileAtomic } from '../util/files.js';

export interface NodeConfig {
  server: string;
  nodeName: string;
  tunnelServer?: string;
  caCertHashes: string[];
  joinedAt: string;
  /** A shielded node: it proves its TPM (reached through this TCTI) for every client certificate, and holds no token. */
  shielded?: { tcti: string; pool?: string };
}

export type CredentialKind = 'client' | 'server';

/** A certificate chain and the key it certifies, read from one "-current.pem" file. */
export interface StoredCredential {
  /** PEM chain, leaf first. */
  cert: string;
  /** PEM private key. */
  key: string;
  leaf: ParsedCertificate;
}

const KEY_BLOCK = /-----BEGIN (?:EC |RSA )?PRIVATE KEY-----[\s\S]+?-----END (?:EC |RSA )?PRIVATE KEY-----\n?/;
const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g;

export function nodePaths(dataDir: string) {
  const dir = resolve(dataDir);
  const pki = join(dir, 'pki');
  return {
    dir,
    pki,
    config: join(dir, 'config.json'),
    token: join(dir, 'bootstrap-token'),
    log: join(dir, 'agent.log'),
    ca: join(pki, 'ca.crt'),
    credential: (k: CredentialKind) => join(pki, `kubelet-${k}-current.pem`),
    pendingKey: (k: CredentialKind) => join(pki, `kubelet-${k}.key.tmp`),
  };
}

export type NodePaths = ReturnType<typeof nodePaths>;

/** Splits a "-current.pem" file (certificates and one private key, in any order). */
export function splitCredential(text: string, what: string): StoredCredential {
  const key = KEY_BLOCK.exec(text)?.[0];
  const certs = text.match(CERT_BLOCK) ?? [];
  if (!key || certs.length === 0) throw new TrustplaneError('Invalid', `${what} does not hold a certificate and a private key`);
  const cert = certs.map((c) => (c.endsWith('\n') ? c : `${c}\n`)).join('');
  const leaf = parseCertificate(pemDecodeAll(cert, 'CERTIFICATE')[0]);
  return { cert, key: key.endsWith('\n') ? key : `${key}\n`, leaf };
}

/** Everything the node keeps on disk, read and written through one object. */
export class NodeState {
  readonly paths: NodePaths;

  constructor(dataDir: string) {
    this.paths = nodePaths(dataDir);
  }

  /** Creates the directories (0700) and tightens what is there. */
  ensureDirs(): void {
    mkdirSync(this.paths.pki, { recursive: true, mode: 0o700 });
    chmodSync(this.paths.dir, 0o700);
    chmodSync(this.paths.pki, 0o700);
  }

  readConfig(): NodeConfig | undefined {
    if (!existsSync(this.paths.config)) return undefined;
    try {
      return JSON.parse(readFileSync(this.paths.config, 'utf8')) as NodeConfig;
    } catch (e) {
      throw new TrustplaneError('Invalid', `${this.paths.config} cannot be read: ${(e as Error).message}`, `remove ${this.paths.dir} and join again`);
    }
  }

  writeConfig(c: NodeConfig): void {
    writeFileAtomic(this.paths.config, `${JSON.stringify(c, null, 2)}\n`, 0o600);
  }

  readCaBundle(): string | undefined {
    return existsSync(this.paths.ca) ? readFileSync(this.paths.ca, 'utf8') : undefined;
  }

  writeCaBundle(pem: string): void {
    writeFileAtomic(this.paths.ca, pem);
  }

  readToken(): string | undefined {
    if (!existsSync(this.paths.token)) return undefined;
    const t = readFileSync(this.paths.token, 'utf8').trim();
    return t || undefined;
  }

  writeToken(token: string): void {
    writeFileAtomic(this.paths.token, `${token}\n`, 0o600);
  }

  removeToken(): void {
    rmSync(this.paths.token, { force: true });
  }

  readCredential(kind: CredentialKind): StoredCredential | undefined {
    const p = this.paths.credential(kind);
    if (!existsSync(p)) return undefined;
    return splitCredential(readFileSync(p, 'utf8'), p);
  }

  writeCredential(kind: CredentialKind, cert: string, key: string): void {
    writeFileAtomic(this.paths.credential(kind), cert + key, 0o600);
  }

  readPendingKey(kind: CredentialKind): string | undefined {
    const p = this.paths.pendingKey(kind);
    return existsSync(p) ? readFileSync(p, 'utf8') : undefined;
  }

  writePendingKey(kind: CredentialKind, keyPem: string): void {
    writeFileAtomic(this.paths.pendingKey(kind), keyPem, 0o600);
  }

  removePendingKey(kind: CredentialKind): void {
    rmSync(this.paths.pendingKey(kind), { force: true });
  }
}
