// The on-disk form of one soft key: public metadata in clear, the PKCS#8 private key sealed with AES-256-GCM under the KEK.
import { createCipheriv, createDecipheriv, createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import type { KeyAlgorithm } from '../../pki/types.js';
import { TrustplaneError, invalid } from '../../util/errors.js';
import { checkKeyAlgorithm, describeKeyAlgorithm } from '../algorithm.js';
import { isKeyId } from '../key-id.js';
import type { KeyInfo } from '../keystore.js';
import type { Kek } from './kek.js';

export const KEY_FILE_FORMAT = 'trustplane-soft-key/1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

interface KeyFileJson {
  format: string;
  id: string;
  label: string;
  algorithm: KeyAlgorithm;
  createdAt: string;
  publicKey: string; // SPKI DER, base64
  kekId: string;
  iv: string;
  ciphertext: string;
  tag: string;
}

export interface OpenedKey {
  info: KeyInfo;
  publicKey: Buffer;
  privateKey: KeyObject;
}

/** Seals a private key into the JSON text of its key file; a fresh random IV every call. */
export function sealKeyFile(info: KeyInfo, publicKey: Buffer, privateKey: KeyObject, kek: Kek): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', kek.bytes(), iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(additionalData(info, publicKey));
  const plain = privateKey.export({ format: 'der', type: 'pkcs8' });
  let ciphertext: Buffer;
  try {
    ciphertext = Buffer.concat([cipher.update(plain), cipher.final()]);
  } finally {
    plain.fill(0);
  }
  const file: KeyFileJson = {
    format: KEY_FILE_FORMAT,
    id: info.id,
    label: info.label,
    algorithm: info.algorithm,
    createdAt: info.createdAt.toISOString(),
    publicKey: publicKey.toString('base64'),
    kekId: kek.id,
    iv: iv.toString('base64'),
    ciphertext: ciphertext.toString('base64'),
    tag: cipher.getAuthTag().toString('base64'),
  };
  return `${JSON.stringify(file, null, 2)}\n`;
}

/**
 * Reads and authenticates a key file. `path` and `expectedId` (from the file name) are for messages and for
 * refusing a file renamed onto another id. A wrong KEK → Invalid; a modified or corrupted file → Internal.
 */
export function openKeyFile(text: string, expectedId: string, kek: Kek, path: string): OpenedKey {
  const damaged = (what: string) =>
    new TrustplaneError('Internal', `key file ${path} ${what}: it was modified or corrupted`, 'restore it from a backup, or destroy the key');
  let f: KeyFileJson;
  try {
    f = JSON.parse(text) as KeyFileJson;
  } catch {
    throw damaged('is not valid JSON');
  }
  if (!f || typeof f !== 'object' || f.format !== KEY_FILE_FORMAT) throw damaged(`is not in format ${KEY_FILE_FORMAT}`);
  for (const k of ['id', 'label', 'createdAt', 'publicKey', 'kekId', 'iv', 'ciphertext', 'tag'] as const) {
    if (typeof f[k] !== 'string') throw damaged(`has no string field "${k}"`);
  }
  if (!isKeyId(f.id) || f.id !== expectedId) throw damaged(`holds id ${JSON.stringify(f.id)}, not the ${expectedId} its name says`);
  let algorithm: KeyAlgorithm;
  try {
    algorithm = checkKeyAlgorithm(f.algorithm);
  } catch {
    throw damaged('names an unsupported key algorithm');
  }
  const createdAt = new Date(f.createdAt);
  if (Number.isNaN(createdAt.getTime())) throw damaged('has an invalid createdAt');
  if (f.kekId !== kek.id) {
    throw invalid(
      `key file ${path} was sealed under a different key encryption key (KEK id ${f.kekId}) than the one configured (${kek.origin}, KEK id ${kek.id})`,
      'configure the KEK this key store was created with (config kek / kekFile, or TRUSTPLANE_KEK_FILE)',
    );
  }
  const info: KeyInfo = { id: f.id, label: f.label, algorithm, createdAt };
  const publicKey = Buffer.from(f.publicKey, 'base64');
  const iv = Buffer.from(f.iv, 'base64');
  const tag = Buffer.from(f.tag, 'base64');
  if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) throw damaged('has an IV or tag of the wrong length');

  let plain: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', kek.bytes(), iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(additionalData(info, publicKey));
    decipher.setAuthTag(tag);
    plain = Buffer.concat([decipher.update(Buffer.from(f.ciphertext, 'base64')), decipher.final()]);
  } catch {
    throw damaged('failed authentication');
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: plain, format: 'der', type: 'pkcs8' });
  } catch {
    throw damaged('holds no readable private key');
  } finally {
    plain.fill(0);
  }
  if (!matchesAlgorithm(privateKey, algorithm)) throw damaged(`holds a key that is not ${describeKeyAlgorithm(algorithm)}`);
  const derived = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  if (!derived.equals(publicKey)) throw damaged('holds a public key that does not match its private key');
  return { info, publicKey, privateKey };
}

export function matchesAlgorithm(key: KeyObject, a: KeyAlgorithm): boolean {
  const d = key.asymmetricKeyDetails ?? {};
  switch (a.kind) {
    case 'ec':
      return key.asymmetricKeyType === 'ec' && d.namedCurve === (a.curve === 'P-256' ? 'prime256v1' : 'secp384r1');
    case 'rsa':
      return key.asymmetricKeyType === 'rsa' && d.modulusLength === a.bits;
    case 'ed25519':
      return key.asymmetricKeyType === 'ed25519';
  }
}

/** What the GCM tag binds besides the key: every clear field, so no file or field can be swapped for another's. */
function additionalData(info: KeyInfo, publicKey: Buffer): Buffer {
  return Buffer.from(
    JSON.stringify([KEY_FILE_FORMAT, info.id, info.label, describeKeyAlgorithm(info.algorithm), info.createdAt.toISOString(), publicKey.toString('base64')]),
    'utf8',
  );
}
