// Loads a PKCS#11 module once per process and shares it: C_Initialize and C_Finalize are process-wide, so stores count their uses.
import { realpathSync } from 'node:fs';
import pkcs11js from 'pkcs11js';
import { invalid } from '../../util/errors.js';
import { ckr, tokenError } from './token-error.js';

export type Pkcs11 = pkcs11js.PKCS11;

interface Loaded {
  lib: Pkcs11;
  users: number;
  /** False when someone else in this process had initialized the module first: then they finalize it, not us. */
  ownsInit: boolean;
}

const loaded = new Map<string, Loaded>();

/** The module at `path`, initialized with CKF_OS_LOCKING_OK (without it, concurrent sessions corrupt the heap). */
export function acquireModule(path: string): Pkcs11 {
  let key: string;
  try {
    key = realpathSync(path);
  } catch {
    throw invalid(`PKCS#11 module ${path} does not exist`, 'set "module" to the path of the token vendor\'s PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so');
  }
  const found = loaded.get(key);
  if (found) {
    found.users++;
    return found.lib;
  }
  const lib = new pkcs11js.PKCS11();
  try {
    lib.load(key);
  } catch (e) {
    throw invalid(`cannot load PKCS#11 module ${path}: ${(e as Error).message}`);
  }
  let ownsInit = true;
  try {
    lib.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  } catch (e) {
    if (ckr(e) === 'CKR_CRYPTOKI_ALREADY_INITIALIZED') ownsInit = false;
    else {
      lib.close();
      throw tokenError('C_Initialize', e);
    }
  }
  loaded.set(key, { lib, users: 1, ownsInit });
  return lib;
}

/** Gives back one use; the last user finalizes the module, so a later acquire reads the token list (and SOFTHSM2_CONF) afresh. */
export function releaseModule(lib: Pkcs11): void {
  for (const [key, l] of loaded) {
    if (l.lib !== lib) continue;
    if (--l.users > 0) return;
    loaded.delete(key);
    try {
      if (l.ownsInit) l.lib.C_Finalize();
    } finally {
      l.lib.close();
    }
    return;
  }
}
