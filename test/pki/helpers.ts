// Shared pieces of the PKI tests: one key per algorithm, an openssl runner in a temp dir, a seeded PRNG, a CA factory.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { type KeyObject, createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildCertificate, issuerOf, parseCertificate, selfSignedCa, softSigner } from '../../src/pki/index.js';
import type { CertificateTemplate, KeyAlgorithm, Name, ParsedCertificate, ParsedCsr, Signer } from '../../src/pki/types.js';
import { TrustplaneError } from '../../src/util/errors.js';

export const ALGORITHMS: readonly KeyAlgorithm[] = [
  { kind: 'ec', curve: 'P-256' },
  { kind: 'ec', curve: 'P-384' },
  { kind: 'rsa', bits: 2048 },
  { kind: 'rsa', bits: 3072 },
  { kind: 'rsa', bits: 4096 },
  { kind: 'ed25519' },
];

export function algName(a: KeyAlgorithm): string {
  return a.kind === 'ec' ? a.curve : a.kind === 'rsa' ? `RSA-${a.bits}` : 'Ed25519';
}

const keyCache = new Map<string, KeyObject[]>();

/** The `i`th test key of an algorithm, generated once per process (RSA-4096 takes a while). */
export function testKey(a: KeyAlgorithm, i = 0): KeyObject {
  const k = algName(a);
  const list = keyCache.get(k) ?? [];
  keyCache.set(k, list);
  while (list.length <= i) {
    if (a.kind === 'ec') list.push(generateKeyPairSync('ec', { namedCurve: a.curve }).privateKey);
    else if (a.kind === 'rsa') list.push(generateKeyPairSync('rsa', { modulusLength: a.bits }).privateKey);
    else list.push(generateKeyPairSync('ed25519').privateKey);
  }
  return list[i];
}

export function testSigner(a: KeyAlgorithm, i = 0): Signer {
  return softSigner(testKey(a, i));
}

/** A directory removed when the test process ends. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tp-pki-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs openssl; throws with its stderr when it fails. */
export function openssl(args: string[], cwd: string, input?: string | Buffer): string {
  return execFileSync('openssl', args, { cwd, input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Runs openssl and returns its exit status and output, for commands expected to fail. */
export function opensslStatus(args: string[], cwd: string): { status: number; out: string } {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  return { status: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

export function writeFile(dir: string, name: string, content: string | Buffer): string {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
}

export function readFile(dir: string, name: string): Buffer {
  return readFileSync(join(dir, name));
}

export function pkcs8Pem(k: KeyObject): string {
  return k.export({ type: 'pkcs8', format: 'pem' }) as string;
}

export function keyFromPem(pem: string): KeyObject {
  return createPrivateKey(pem);
}

/** mulberry32: a small seeded PRNG, so fuzz and corpus runs repeat exactly. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const DAY = 86400_000;
export const T0 = new Date('2026-03-01T00:00:00Z');

export interface TestCa {
  cert: ParsedCertificate;
  signer: Signer;
  issue(template: Omit<CertificateTemplate, 'notBefore' | 'notAfter'> & { notBefore?: Date; notAfter?: Date }): Promise<ParsedCertificate>;
}

/** A self-signed CA valid around T0 (or as given). */
export async function makeCa(subject: Name, signer: Signer, o: { notBefore?: Date; notAfter?: Date; pathLen?: number } = {}): Promise<TestCa> {
  const cert = parseCertificate(
    await selfSignedCa({ subject, signer, notBefore: o.notBefore ?? new Date(T0.getTime() - DAY), notAfter: o.notAfter ?? new Date(T0.getTime() + 365 * DAY), pathLen: o.pathLen }),
  );
  return caFrom(cert, signer);
}

export function caFrom(cert: ParsedCertificate, signer: Signer): TestCa {
  const issuer = issuerOf(cert, signer);
  return {
    cert,
    signer,
    async issue(t) {
      const der = await buildCertificate({ notBefore: new Date(T0.getTime() - DAY), notAfter: new Date(T0.getTime() + 30 * DAY), ...t }, issuer);
      return parseCertificate(der);
    },
  };
}

/** Asserts that `fn` throws a TrustplaneError whose message matches `re`, and returns it. */
export function refuses(fn: () => unknown, re: RegExp, reason = 'Invalid'): TrustplaneError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof TrustplaneError, `expected a TrustplaneError matching ${re}, got ${caught instanceof Error ? `${caught.name}: ${caught.message}` : String(caught)}`);
  assert.match(caught.message, re);
  assert.equal(caught.reason, reason);
  return caught;
}

export async function refusesAsync(fn: () => Promise<unknown>, re: RegExp): Promise<TrustplaneError> {
  let caught: unknown;
  try {
    await fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof TrustplaneError, `expected a TrustplaneError matching ${re}, got ${String(caught)}`);
  assert.match(caught.message, re);
  return caught;
}

/** A parsed CSR with this subject and nothing else (no SANs, no extensions), for policy decisions that never verify it. */
export function parsedCsrOf(subject: Name, extra: Partial<ParsedCsr> = {}): ParsedCsr {
  return {
    der: Buffer.alloc(0),
    subject,
    publicKey: Buffer.from('spki'),
    keyAlgorithm: { kind: 'ec', curve: 'P-256' },
    extensions: [],
    sans: { dns: [], ip: [], uri: [], email: [] },
    ...extra,
  };
}
