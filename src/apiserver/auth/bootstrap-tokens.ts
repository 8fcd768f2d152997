// Bootstrap tokens "<id>.<secret>": created for a node pool (or one node name), stored hashed with an expiry, checked in constant time.
import { createHash, randomInt, timingSafeEqual } from 'node:crypto';
import { nodeNameProblem } from '../../pki/node-identity.js';
import type { KeyValue, Store } from '../../store/client.js';
import { systemClock, type Clock } from '../../util/clock.js';
import { TrustplaneError, invalid } from '../../util/errors.js';
import { BOOTSTRAP_USER_PREFIX, GROUP_BOOTSTRAPPERS, type UserInfo } from '../types.js';

export const BOOTSTRAP_TOKEN_PREFIX = '/registry/bootstraptokens/';
export const TOKEN_FORMAT = /^([a-z0-9]{6})\.([a-z0-9]{16})$/;
/** spec.extra key that carries the node name a single-use token is bound to, for the approver. */
export const EXTRA_BOUND_NODE = 'trustplane.io/bound-node-name';
/** spec.extra key that carries when the token was made: a node whose credentials were revoked needs a newer one. */
export const EXTRA_TOKEN_CREATED = 'trustplane.io/token-created-at';

export type BootstrapTokenUsage = 'authentication' | 'signing';

/** What the store keeps of a token: never the secret, only its SHA-256. */
export interface BootstrapTokenRecord {
  id: string;
  secretSha256: string; // hex
  pool: string;
  usages: BootstrapTokenUsage[];
  createdAt: string;
  expiresAt: string;
  /** Set for a single-use token bound to one node name. */
  nodeName?: string;
  /** The CSR a single-use token was spent on. */
  usedBy?: string;
}

export interface BootstrapTokenInfo {
  id: string;
  pool: string;
  usages: BootstrapTokenUsage[];
  createdAt: Date;
  expiresAt: Date;
  nodeName?: string;
  usedBy?: string;
  /** The store's mod revision of the record. */
  modRevision: bigint;
}

export interface AuthenticatedToken {
  user: UserInfo;
  token: BootstrapTokenInfo;
}

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
const POOL_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

function randomString(n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += ALPHABET[randomInt(ALPHABET.length)];
  return s;
}

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest();
const key = (id: string) => `${BOOTSTRAP_TOKEN_PREFIX}${id}`;

function info(r: BootstrapTokenRecord, modRevision: bigint): BootstrapTokenInfo {
  return {
    id: r.id,
    pool: r.pool,
    usages: r.usages,
    createdAt: new Date(r.createdAt),
    expiresAt: new Date(r.expiresAt),
    ...(r.nodeName ? { nodeName: r.nodeName } : {}),
    ...(r.usedBy ? { usedBy: r.usedBy } : {}),
    modRevision,
  };
}

function readRecord(value: Buffer): BootstrapTokenRecord | null {
  try {
    const r = JSON.parse(value.toString('utf8')) as BootstrapTokenRecord;
    return typeof r.id === 'string' && typeof r.secretSha256 === 'string' ? r : null;
  } catch {
    return null;
  }
}

export async function createBootstrapToken(
  store: Store,
  o: { pool: string; ttlSeconds: number; usages?: BootstrapTokenUsage[]; nodeName?: string },
  clock: Clock = systemClock,
): Promise<{ token: string; id: string; expiresAt: Date }> {
  if (!POOL_NAME.test(o.pool)) throw invalid(`node pool name "${o.pool}" is not a DNS label`, 'use lower-case letters, digits and "-"');
  if (!Number.isInteger(o.ttlSeconds) || o.ttlSeconds <= 0) throw invalid(`bootstrap token TTL ${o.ttlSeconds} is not a positive whole number of seconds`);
  const nameProblem = o.nodeName === undefined ? undefined : nodeNameProblem(o.nodeName);
  if (nameProblem) throw invalid(`a bootstrap token cannot be bound to this node: ${nameProblem}`);
  const usages = o.usages ?? ['authentication', 'signing'];
  for (const u of usages) if (u !== 'authentication' && u !== 'signing') throw invalid(`bootstrap token usage "${u}" is unknown`, 'use authentication or signing');
  const now = clock.now();
  const expiresAt = new Date(now.getTime() + o.ttlSeconds * 1000);
  for (let attempt = 0; attempt < 8; attempt++) {
    const id = randomString(6);
    const secret = randomString(16);
    const record: BootstrapTokenRecord = {
      id,
      secretSha256: sha256(secret).toString('hex'),
      pool: o.pool,
      usages,
      createdAt: now.toISOString(),
      expiresAt: expiresAt.toISOString(),
      ...(o.nodeName ? { nodeName: o.nodeName } : {}),
    };
    if (await store.createIfAbsent(key(id), JSON.stringify(record))) return { token: `${id}.${secret}`, id, expiresAt };
  }
  throw new TrustplaneError('Internal', 'could not find a free bootstrap token id after 8 attempts');
}

export async function listBootstrapTokens(store: Store): Promise<BootstrapTokenInfo[]> {
  const r = await store.getPrefix(BOOTSTRAP_TOKEN_PREFIX);
  const out: BootstrapTokenInfo[] = [];
  for (const kv of r.kvs) {
    const rec = readRecord(kv.value);
    if (rec) out.push(info(rec, kv.modRevision));
  }
  return out;
}

export async function getBootstrapToken(store: Store, id: string): Promise<BootstrapTokenInfo | null> {
  const kv = await store.get(key(id));
  const rec = kv && readRecord(kv.value);
  return rec ? info(rec, kv.modRevision) : null;
}

/** True if the token existed. */
export async function deleteBootstrapToken(store: Store, id: string): Promise<boolean> {
  if (!/^[a-z0-9]{6}$/.test(id)) throw invalid(`bootstrap token id "${id}" is not 6 lower-case letters or digits`);
  return (await store.delete(key(id))).deleted > 0;
}

/**
 * The user a bearer token stands for, or null when it is malformed, unknown, wrong, expired or not for authentication.
 * The secret is compared by hash in constant time, so neither its length nor its prefix leaks through timing.
 */
export async function authenticateBootstrapToken(
  store: Store | { lookup(id: string): Promise<KeyValue | null> },
  token: string,
  clock: Clock = systemClock,
): Promise<AuthenticatedToken | null> {
  const m = TOKEN_FORMAT.exec(token);
  if (!m) return null;
  const [, id, secret] = m;
  // A BootstrapTokenCache answers from memory; a Store is read.
  const kv = 'lookup' in store ? await store.lookup(id) : await store.get(key(id));
  const rec = kv && readRecord(kv.value);
  if (!rec) return null;
  let stored: Buffer;
  try {
    stored = Buffer.from(rec.secretSha256, 'hex');
  } catch {
    return null;
  }
  const given = sha256(secret);
  if (stored.length !== given.length || !timingSafeEqual(stored, given)) return null;
  if (clock.now().getTime() >= Date.parse(rec.expiresAt)) return null;
  if (!rec.usages.includes('authentication')) return null;
  const user: UserInfo = {
    name: `${BOOTSTRAP_USER_PREFIX}${id}`,
    groups: [GROUP_BOOTSTRAPPERS, `${GROUP_BOOTSTRAPPERS}:${rec.pool}`],
    extra: { [EXTRA_TOKEN_CREATED]: [rec.createdAt], ...(rec.nodeName ? { [EXTRA_BOUND_NODE]: [rec.nodeName] } : {}) },
  };
  return { user, token: info(rec, kv.modRevision) };
}

/**
 * Spends a single-use token on the CSR `csrName`: succeeds once per token, atomically (compare-and-swap on the record).
 * Returns false if the token was already spent or is gone. Tokens that are not single-use always succeed.
 */
export async function claimBootstrapToken(store: Store, id: string, csrName: string): Promise<boolean> {
  for (;;) {
    const kv = await store.get(key(id));
    const rec = kv && readRecord(kv.value);
    if (!rec) return false;
    if (!rec.nodeName) return true;
    if (rec.usedBy) return false;
    const r = await store.updateIfModRevision(key(id), JSON.stringify({ ...rec, usedBy: csrName }), kv.modRevision);
    if (r.ok) return true;
  }
}

/** Gives a claim back when the CSR it was made for could not be written. */
export async function releaseBootstrapToken(store: Store, id: string, csrName: string): Promise<void> {
  for (let i = 0; i < 5; i++) {
    const kv = await store.get(key(id));
    const rec = kv && readRecord(kv.value);
    if (!rec || rec.usedBy !== csrName) return;
    const { usedBy: _, ...rest } = rec;
    if ((await store.updateIfModRevision(key(id), JSON.stringify(rest), kv.modRevision)).ok) return;
  }
}
