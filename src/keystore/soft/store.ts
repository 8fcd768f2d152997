// The soft key store: keys made by node:crypto, kept sealed under a KEK in <dir>/keys/<id>.json, used only as in-memory KeyObjects.
import { generateKeyPair, sign as cryptoSign, createPublicKey, type KeyObject } from 'node:crypto';
import { mkdir, readdir, readFile, unlink, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { KeyAlgorithm, Signer } from '../../pki/types.js';
import { TrustplaneError, invalid } from '../../util/errors.js';
import { writeFileAtomic } from '../../util/files.js';
import { Mutex } from '../../util/mutex.js';
import { DEFAULT_KEY_ALGORITHM, checkKeyAlgorithm, signatureHash } from '../algorithm.js';
import { keyNotFound, labelInUse, storeClosed } from '../errors.js';
import { checkKeyId, isKeyId, newKeyId } from '../key-id.js';
import type { KeyInfo, KeyStore, SoftKeyStoreConfig } from '../keystore.js';
import { byCreation, copyKeyInfo } from '../key-info.js';
import { checkLabel } from '../label.js';
import { shredFile } from './shred-file.js';
import { type Kek, loadKek } from './kek.js';
import { openKeyFile, sealKeyFile } from './key-file.js';

interface LiveKey {
  info: KeyInfo;
  publicKey: Buffer;
  privateKey: KeyObject;
  hash: 'sha256' | 'sha384' | null;
}

const generateKeyPairAsync = promisify(generateKeyPair);
// writeFileAtomic (util/files) writes <name>.tmp-<pid>-<time> and renames it; a crash in between leaves one behind.
const TEMP_MARK = '.tmp-';
const signAsync = promisify(cryptoSign) as (alg: string | null, data: Buffer, key: KeyObject) => Promise<Buffer>;

/** Opens (creating if need be) a soft key store; every key file is authenticated now, so a wrong KEK or a damaged file fails here. */
export async function openSoftKeyStore(config: SoftKeyStoreConfig, env: NodeJS.ProcessEnv = process.env): Promise<SoftKeyStore> {
  if (typeof config.dir !== 'string' || config.dir === '') throw invalid('the soft key store needs "dir": the directory that holds its keys');
  const keysDir = join(config.dir, 'keys');
  try {
    await mkdir(keysDir, { recursive: true, mode: 0o700 });
    await chmod(config.dir, 0o700).catch(() => undefined);
    await chmod(keysDir, 0o700);
  } catch (e) {
    throw new TrustplaneError('Internal', `cannot create the key store directory ${keysDir}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const kek = await loadKek({ kek: config.kek, kekFile: config.kekFile, dir: config.dir, env });
  const keys = new Map<string, LiveKey>();
  for (const name of (await readdir(keysDir)).sort()) {
    const path = join(keysDir, name);
    if (name.includes(TEMP_MARK)) {
      await unlink(path).catch(() => undefined); // left by a crash between write and rename
      continue;
    }
    if (!name.endsWith('.json')) continue;
    const id = name.slice(0, -'.json'.length);
    if (!isKeyId(id)) continue;
    const opened = openKeyFile(await readFile(path, 'utf8'), id, kek, path);
    keys.set(id, { ...opened, hash: signatureHash(opened.info.algorithm) });
  }
  return new SoftKeyStore(keysDir, kek, keys);
}

export class SoftKeyStore implements KeyStore {
  readonly type = 'soft';
  readonly #keysDir: string;
  readonly #kek: Kek;
  readonly #keys: Map<string, LiveKey>;
  readonly #lock = new Mutex();
  #closed = false;

  constructor(keysDir: string, kek: Kek, keys: Map<string, LiveKey>) {
    this.#keysDir = keysDir;
    this.#kek = kek;
    this.#keys = keys;
  }

  async generate(label: string, algorithm: KeyAlgorithm = DEFAULT_KEY_ALGORITHM): Promise<KeyInfo> {
    this.#open();
    const l = checkLabel(label);
    const alg = checkKeyAlgorithm(algorithm);
    return this.#lock.run(async () => {
      this.#open();
      this.#refuseLabelInUse(l);
      const privateKey = await newPrivateKey(alg);
      const publicKey = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
      const createdAt = new Date();
      const info: KeyInfo = { id: newKeyId(createdAt), label: l, algorithm: alg, createdAt };
      try {
        writeFileAtomic(this.#pathOf(info.id), sealKeyFile(info, publicKey, privateKey, this.#kek), 0o600);
      } catch (e) {
        throw new TrustplaneError('Internal', `cannot write key file ${this.#pathOf(info.id)}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
      }
      this.#keys.set(info.id, { info, publicKey, privateKey, hash: signatureHash(alg) });
      return copyKeyInfo(info);
    });
  }

  async publicKey(id: string): Promise<Buffer> {
    return Buffer.from(this.#key(id).publicKey);
  }

  sign(id: string, data: Buffer): Promise<Buffer> {
    try {
      return this.#signWith(this.#key(id), data);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  async signer(id: string): Promise<Signer> {
    const k = this.#key(id);
    const keyId = k.info.id;
    return {
      algorithm: { ...k.info.algorithm },
      publicKey: Buffer.from(k.publicKey),
      // Looks the key up on every call so a destroyed key stops signing at once.
      sign: (data: Buffer) => this.sign(keyId, data),
    };
  }

  destroy(id: string): Promise<void> {
    return this.#lock.run(async () => {
      const k = this.#key(id);
      this.#keys.delete(k.info.id);
      try {
        await shredFile(this.#pathOf(k.info.id));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
          throw new TrustplaneError('Internal', `cannot remove key file ${this.#pathOf(k.info.id)}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
        }
      }
    });
  }

  async list(): Promise<KeyInfo[]> {
    this.#open();
    return [...this.#keys.values()].map((k) => copyKeyInfo(k.info)).sort(byCreation);
  }

  async close(): Promise<void> {
    await this.#lock.run(async () => {
      this.#closed = true;
      this.#keys.clear();
    });
  }

  toJSON(): object {
    return { type: this.type, dir: this.#keysDir, kekId: this.#kek.id, keys: this.#keys.size };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `SoftKeyStore { dir: '${this.#keysDir}', kekId: '${this.#kek.id}', keys: ${this.#keys.size}${this.#closed ? ', closed' : ''} }`;
  }

  #signWith(k: LiveKey, data: Buffer): Promise<Buffer> {
    if (!((data as unknown) instanceof Uint8Array)) return Promise.reject(invalid('data to sign must be a Buffer'));
    // EC and Ed25519 signatures take tens of microseconds: signing inline beats a thread-pool round trip.
    // RSA takes milliseconds, so it goes to the pool and keeps the event loop free.
    if (k.info.algorithm.kind === 'rsa') return signAsync(k.hash, data, k.privateKey);
    return Promise.resolve(cryptoSign(k.hash, data, k.privateKey));
  }

  #key(id: string): LiveKey {
    this.#open();
    const k = this.#keys.get(checkKeyId(id));
    if (!k) throw keyNotFound(id);
    return k;
  }

  #refuseLabelInUse(label: string): void {
    for (const k of this.#keys.values()) if (k.info.label === label) throw labelInUse(label, k.info.id);
  }

  #pathOf(id: string): string {
    return join(this.#keysDir, `${id}.json`);
  }

  #open(): void {
    if (this.#closed) throw storeClosed(this.type);
  }
}

async function newPrivateKey(a: KeyAlgorithm): Promise<KeyObject> {
  switch (a.kind) {
    case 'ec':
      return (await generateKeyPairAsync('ec', { namedCurve: a.curve })).privateKey;
    case 'rsa':
      return (await generateKeyPairAsync('rsa', { modulusLength: a.bits, publicExponent: 0x10001 })).privateKey;
    case 'ed25519':
      return (await generateKeyPairAsync('ed25519')).privateKey;
  }
}
