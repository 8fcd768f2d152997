// Opens a key store from its configuration, picking the backend by its type name from one table.
import { TrustplaneError, invalid } from '../util/errors.js';
import type { KeyStore, KeyStoreConfig } from './keystore.js';

type Opener<T extends KeyStoreConfig['type']> = (config: Extract<KeyStoreConfig, { type: T }>) => Promise<KeyStore>;

// Backends load on first use, so a process using only the soft store never loads the native PKCS#11 binding.
const BACKENDS: { [T in KeyStoreConfig['type']]: Opener<T> } = {
  soft: async (config) => (await load('soft', () => import('./soft/store.js'))).openSoftKeyStore(config),
  pkcs11: async (config) => (await load('pkcs11', () => import('./pkcs11/store.js'))).openPkcs11KeyStore(config),
};

async function load<M>(type: string, importer: () => Promise<M>): Promise<M> {
  try {
    return await importer();
  } catch (e) {
    throw new TrustplaneError('Internal', `cannot load the ${type} key store backend: ${(e as Error).message.split('\n')[0]}`, 'reinstall trustplane (npm ci) so its native modules are built');
  }
}

export const KEY_STORE_TYPES = Object.keys(BACKENDS) as Array<KeyStoreConfig['type']>;

export function openKeyStore(config: KeyStoreConfig): Promise<KeyStore> {
  const type: unknown = (config as { type?: unknown } | null)?.type;
  if (typeof type !== 'string' || !Object.hasOwn(BACKENDS, type)) {
    return Promise.reject(
      invalid(
        `unknown key store type ${JSON.stringify(type)}; known types: ${KEY_STORE_TYPES.join(', ')}`,
        'set the key store "type" to one of the known types',
      ),
    );
  }
  const open = BACKENDS[type as KeyStoreConfig['type']] as Opener<KeyStoreConfig['type']>;
  return open(config);
}
