// The KeyStore interface: keys are generated, used and destroyed inside it; there is no operation that exports a private key.
import type { KeyAlgorithm, Signer } from '../pki/types.js';

export interface KeyInfo {
  /** Stable identifier chosen by the store. */
  id: string;
  /** The caller's label, unique within a store (e.g. "cluster/prod/root/g1"). */
  label: string;
  algorithm: KeyAlgorithm;
  createdAt: Date;
}

export interface KeyStore {
  /** The backend's type name as written in configuration ("soft", "pkcs11"). */
  readonly type: string;
  /**
   * Create a key pair; the private half never leaves the store. Refuses a label already in use (AlreadyExists)
   * and any algorithm but EC P-256/P-384, RSA 2048–4096 and Ed25519 (Invalid). Default: EC P-256.
   */
  generate(label: string, algorithm?: KeyAlgorithm): Promise<KeyInfo>;
  /** SubjectPublicKeyInfo, DER. */
  publicKey(id: string): Promise<Buffer>;
  /** Sign `data` (hashing it as the key's algorithm requires); returns the X.509 signature form (see Signer). */
  sign(id: string, data: Buffer): Promise<Buffer>;
  /** A Signer bound to one key, for the PKI core. */
  signer(id: string): Promise<Signer>;
  /** Destroy the key; later use fails with NotFound. Destroying an unknown id fails with NotFound. */
  destroy(id: string): Promise<void>;
  list(): Promise<KeyInfo[]>;
  close(): Promise<void>;
}

/** Configuration of a key store, picked by its type name. */
export type KeyStoreConfig = SoftKeyStoreConfig | Pkcs11KeyStoreConfig;

/** Keys made by node:crypto, sealed with AES-256-GCM under a 32-byte KEK in <dir>/keys/<id>.json. */
export interface SoftKeyStoreConfig {
  type: 'soft';
  dir: string;
  /** A file holding the KEK (32 raw bytes, 64 hex digits or base64), mode 0600. Else $TRUSTPLANE_KEK_FILE, else <dir>/kek (made on first run). */
  kekFile?: string;
  /** The KEK itself, 32 bytes; wins over kekFile. */
  kek?: Buffer;
}

/** Keys made and used on a PKCS#11 token; the token is chosen by label or by slot id. */
export interface Pkcs11KeyStoreConfig {
  type: 'pkcs11';
  /** Path of the PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so. */
  module: string;
  tokenLabel?: string;
  /** The slot id as the module reports it (e.g. `softhsm2-util --show-slots`); used when tokenLabel is absent. */
  slot?: number;
  /** The user PIN. */
  pin: string;
  /** Most sessions kept open for concurrent signing; default 4. */
  sessions?: number;
}
