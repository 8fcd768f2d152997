// SoftHSM2 tokens for tests: one token directory per test process, a fresh token per call, and the env that points SoftHSM2 at it.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

export interface SoftHsmToken {
  /** PKCS#11 module path, for the pkcs11 key store's "module". */
  module: string;
  tokenLabel: string;
  /** User PIN. */
  pin: string;
  soPin: string;
  /** The softhsm2.conf that names the token directory. */
  conf: string;
  /** The temporary directory holding conf and tokens/. */
  dir: string;
  /** Environment for child processes that must see the token: { SOFTHSM2_CONF }. */
  env: Record<string, string>;
}

let shared: { dir: string; conf: string } | undefined;
let made = 0;

export function softHsmAvailable(): boolean {
  return existsSync(SOFTHSM_MODULE);
}

/**
 * Initialises a new SoftHSM2 token in this process's temporary token directory and sets SOFTHSM2_CONF for this
 * process (SoftHSM2 reads it at C_Initialize). A module already initialised in this process sees only the tokens
 * that existed then: make tokens before opening stores, or close every store on the module first (the last close
 * finalizes it, and the next open reads the token list afresh).
 */
export function makeSoftHsmToken(o: { label?: string; pin?: string } = {}): SoftHsmToken {
  if (!shared) {
    const dir = mkdtempSync(join(tmpdir(), 'tp-softhsm-'));
    mkdirSync(join(dir, 'tokens'), { mode: 0o700 });
    const conf = join(dir, 'softhsm2.conf');
    writeFileSync(conf, `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
    shared = { dir, conf };
  }
  process.env.SOFTHSM2_CONF = shared.conf;
  const tokenLabel = o.label ?? `tp-${process.pid}-${++made}-${randomBytes(2).toString('hex')}`;
  const pin = o.pin ?? `user-${randomBytes(4).toString('hex')}`;
  const soPin = `so-${randomBytes(4).toString('hex')}`;
  execFileSync('softhsm2-util', ['--init-token', '--free', '--label', tokenLabel, '--so-pin', soPin, '--pin', pin], {
    env: { ...process.env, SOFTHSM2_CONF: shared.conf },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return { module: SOFTHSM_MODULE, tokenLabel, pin, soPin, conf: shared.conf, dir: shared.dir, env: { SOFTHSM2_CONF: shared.conf } };
}

/** Removes this process's token directory; later calls to makeSoftHsmToken start a new one. */
export function removeSoftHsmTokens(): void {
  if (shared) rmSync(shared.dir, { recursive: true, force: true });
  shared = undefined;
}

/** One object on a token as OpenSC's pkcs11-tool sees it: an independent reader of the token, not our key store. */
export interface TokenObject {
  /** "Private Key Object", "Public Key Object", ... (pkcs11-tool's heading, without the key type). */
  kind: string;
  label?: string;
  /** CKA_ID, lower-case hex. */
  id?: string;
  /** pkcs11-tool's "Access:" line, e.g. "sensitive, always sensitive, never extractable, local". */
  access?: string;
}

export const PKCS11_TOOL = 'pkcs11-tool';

export function pkcs11ToolAvailable(): boolean {
  try {
    execFileSync(PKCS11_TOOL, ['--help'], { stdio: 'ignore' });
    return true;
  } catch (e) {
    // pkcs11-tool --help exits non-zero; only a missing binary is "unavailable".
    return (e as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

/** Every object on the token (public and, logged in with the user PIN, private), listed by `pkcs11-tool --list-objects`. */
export function listTokenObjects(token: SoftHsmToken): TokenObject[] {
  const out = execFileSync(PKCS11_TOOL, ['--module', token.module, '--token-label', token.tokenLabel, '--login', '--pin', token.pin, '--list-objects'], {
    env: { ...process.env, ...token.env },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 30000,
  });
  const objects: TokenObject[] = [];
  for (const line of out.split('\n')) {
    const heading = /^(\S[^;]*?)(?:;.*)?$/.exec(line);
    if (heading) {
      objects.push({ kind: heading[1].trim() });
      continue;
    }
    const attr = /^\s+(label|ID|Access):\s*(.*)$/.exec(line);
    const cur = objects[objects.length - 1];
    if (!attr || !cur) continue;
    if (attr[1] === 'label') cur.label = attr[2].trim();
    else if (attr[1] === 'ID') cur.id = attr[2].trim().toLowerCase();
    else cur.access = attr[2].trim();
  }
  return objects;
}
