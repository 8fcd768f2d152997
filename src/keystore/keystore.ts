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
  /** Create a key pair; the private half never leaves the store. Refuses a label already in use. */
  generate(label: string, algorithm: KeyAlgorithm): Promise<KeyInfo>;
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
export type KeyStoreConfig =
  | { type: 'soft'; dir: string; kekFile?: string; kek?: Buffer }
  | { type: 'pkcs11'; module: string; tokenLabel?: string; slot?: number; pin: string };
