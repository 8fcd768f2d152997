// The key encryption key (KEK) of the soft key store: where it comes from, and the refusal to use one that others can read.
import { createHmac, randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { TrustplaneError, invalid } from '../../util/errors.js';
import { writeFileAtomic } from '../../util/files.js';

export const KEK_FILE_ENV = 'TRUSTPLANE_KEK_FILE';
export const KEK_BYTES = 32;

export interface KekSource {
  kek?: Buffer;
  kekFile?: string;
  /** The store's directory, where a KEK is created on first run when nothing else names one. */
  dir: string;
  env?: NodeJS.ProcessEnv;
}

/** A loaded KEK. The bytes stay in a private field; `id` is a public fingerprint to tell KEKs apart in messages. */
export class Kek {
  readonly #key: Buffer;
  /** Where it came from, for messages: "config.kek", a file path. */
  readonly origin: string;
  /** First 8 bytes of HMAC-SHA256(kek, label), hex: identifies a KEK without revealing it. */
  readonly id: string;

  constructor(key: Buffer, origin: string) {
    if (key.length !== KEK_BYTES) throw invalid(`the key encryption key from ${origin} is ${key.length} bytes; it must be ${KEK_BYTES} bytes`);
    this.#key = Buffer.from(key); // a private copy: the caller may reuse or wipe theirs
    this.origin = origin;
    this.id = createHmac('sha256', this.#key).update('trustplane/keystore/soft/kek-id').digest().subarray(0, 8).toString('hex');
  }

  /** The raw key for the cipher; used only by the key-file codec. */
  bytes(): Buffer {
    return this.#key;
  }

  toJSON(): object {
    return { kekId: this.id, origin: this.origin };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `Kek { id: '${this.id}', origin: '${this.origin}' }`;
  }
}

/** Picks the KEK: config.kek, else config.kekFile, else $TRUSTPLANE_KEK_FILE, else <dir>/kek (created on first run, mode 0600). */
export async function loadKek(src: KekSource): Promise<Kek> {
  if (src.kek !== undefined) {
    if (!Buffer.isBuffer(src.kek)) throw invalid('config.kek must be a Buffer of 32 bytes');
    return new Kek(src.kek, 'config.kek');
  }
  const env = src.env ?? process.env;
  const named = src.kekFile ?? (env[KEK_FILE_ENV] ? env[KEK_FILE_ENV] : undefined);
  if (named !== undefined) {
    const origin = src.kekFile !== undefined ? `kekFile ${named}` : `${KEK_FILE_ENV}=${named}`;
    return readKekFile(named, origin, false);
  }
  const path = join(src.dir, 'kek');
  return readKekFile(path, path, true);
}

async function readKekFile(path: string, origin: string, createIfMissing: boolean): Promise<Kek> {
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw readFailure(path, e);
    if (!createIfMissing) throw invalid(`the key encryption key file ${path} (from ${origin}) does not exist`, 'create it with 32 random bytes (e.g. `openssl rand -hex 32 > FILE; chmod 600 FILE`) or fix the path');
    const key = randomBytes(KEK_BYTES);
    try {
      writeFileAtomic(path, `${key.toString('hex')}\n`, 0o600);
    } catch (e2) {
      throw readFailure(path, e2);
    }
    return new Kek(key, path);
  }
  if (!st.isFile()) throw invalid(`the key encryption key file ${path} is not a regular file`);
  if ((st.mode & 0o077) !== 0) {
    throw invalid(
      `the key encryption key file ${path} has mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}: group or others may read or write it, so it is not used`,
      `run \`chmod 600 ${path}\` so only its owner can read it`,
    );
  }
  let raw: Buffer;
  try {
    raw = await readFile(path);
  } catch (e) {
    throw readFailure(path, e);
  }
  return new Kek(decodeKek(raw, path), origin);
}

/** A KEK file holds 32 raw bytes, or 64 hex digits, or the base64 of 32 bytes (surrounding whitespace ignored). */
function decodeKek(raw: Buffer, path: string): Buffer {
  if (raw.length === KEK_BYTES) return raw;
  const text = raw.toString('latin1').trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(text)) {
    const b = Buffer.from(text, 'base64');
    if (b.length === KEK_BYTES) return b;
  }
  throw invalid(`the key encryption key file ${path} does not hold a 32-byte key (${raw.length} bytes read)`, 'it must hold 32 raw bytes, 64 hex digits or base64 of 32 bytes');
}

function readFailure(path: string, e: unknown): TrustplaneError {
  const code = (e as NodeJS.ErrnoException).code ?? 'error';
  return new TrustplaneError('Internal', `cannot read or create the key encryption key file ${path}: ${code}`);
}
