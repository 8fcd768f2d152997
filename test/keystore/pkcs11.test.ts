// The PKCS#11 key store against a real SoftHSM2 token: the shared suite, then what the token itself must refuse.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import pkcs11js from 'pkcs11js';
import type { KeyStore, Pkcs11KeyStoreConfig } from '../../src/keystore/keystore.js';
import { openKeyStore } from '../../src/keystore/registry.js';
import { acquireModule, releaseModule, type Pkcs11 } from '../../src/keystore/pkcs11/module.js';
import { ecdsaRawToDer } from '../../src/keystore/pkcs11/ecdsa-signature.js';
import { ckr } from '../../src/keystore/pkcs11/token-error.js';
import { CKM_EC_EDWARDS_KEY_PAIR_GEN, CKM_EDDSA } from '../../src/keystore/pkcs11/mechanisms.js';
import { SessionPool } from '../../src/keystore/pkcs11/session-pool.js';
import { Pkcs11KeyStore } from '../../src/keystore/pkcs11/store.js';
import { keyStoreSuite, rejectsWith, verifies } from './shared-suite.js';
import { makeSoftHsmToken, removeSoftHsmTokens, type SoftHsmToken } from './softhsm.js';

after(() => removeSoftHsmTokens());

const configs = new WeakMap<KeyStore, Pkcs11KeyStoreConfig>();

function configFor(t: SoftHsmToken): Pkcs11KeyStoreConfig {
  return { type: 'pkcs11', module: t.module, tokenLabel: t.tokenLabel, pin: t.pin };
}

async function open(config: Pkcs11KeyStoreConfig): Promise<KeyStore> {
  const s = await openKeyStore(config);
  configs.set(s, config);
  return s;
}

// Each fresh store gets its own token. The suite closes every store before making the next, so the module
// is finalized in between and sees the new token when it is initialised again.
keyStoreSuite({
  name: 'pkcs11 (SoftHSM2)',
  fresh: () => open(configFor(makeSoftHsmToken())),
  reopen: (closed) => open(configs.get(closed)!),
});

/** Runs `fn` with a session of our own on the store's token, through the same shared module instance. */
function withTokenSession<T>(t: SoftHsmToken, fn: (lib: Pkcs11, s: Buffer) => T): T {
  const lib = acquireModule(t.module);
  try {
    const slot = lib.C_GetSlotList(true).find((sl) => lib.C_GetTokenInfo(sl).label.trimEnd() === t.tokenLabel)!;
    const s = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    try {
      try {
        lib.C_Login(s, pkcs11js.CKU_USER, t.pin);
      } catch (e) {
        if (ckr(e) !== 'CKR_USER_ALREADY_LOGGED_IN') throw e;
      }
      return fn(lib, s);
    } finally {
      lib.C_CloseSession(s);
    }
  } finally {
    releaseModule(lib);
  }
}

function findById(lib: Pkcs11, s: Buffer, id: string, cls?: number): Buffer[] {
  const template: pkcs11js.Template = [{ type: pkcs11js.CKA_ID, value: Buffer.from(id, 'hex') }];
  if (cls !== undefined) template.push({ type: pkcs11js.CKA_CLASS, value: cls });
  lib.C_FindObjectsInit(s, template);
  const found = lib.C_FindObjects(s, 16);
  lib.C_FindObjectsFinal(s);
  return found;
}

function ckrOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return ckr(e) ?? String(e);
  }
  return 'no error';
}

describe('pkcs11 key store: the token keeps the keys', () => {
  it('makes private keys sensitive, never extractable, token objects: CKA_VALUE, wrapping and making them extractable all fail', async () => {
    const t = makeSoftHsmToken();
    const store = await open(configFor(t));
    try {
      const ec = await store.generate('ca/root', { kind: 'ec', curve: 'P-256' });
      const rsa = await store.generate('ca/rsa', { kind: 'rsa', bits: 2048 });
      const ed = await store.generate('ca/ed', { kind: 'ed25519' });
      withTokenSession(t, (lib, s) => {
        const wrappingKey = lib.C_GenerateKey(s, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
          { type: pkcs11js.CKA_TOKEN, value: false },
          { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
          { type: pkcs11js.CKA_WRAP, value: true },
        ]);
        for (const k of [ec, rsa, ed]) {
          const [priv] = findById(lib, s, k.id, pkcs11js.CKO_PRIVATE_KEY);
          assert.ok(priv, `private key ${k.label} is on the token`);
          const flags = lib.C_GetAttributeValue(s, priv, [
            { type: pkcs11js.CKA_TOKEN },
            { type: pkcs11js.CKA_PRIVATE },
            { type: pkcs11js.CKA_SENSITIVE },
            { type: pkcs11js.CKA_EXTRACTABLE },
            { type: pkcs11js.CKA_ALWAYS_SENSITIVE },
            { type: pkcs11js.CKA_NEVER_EXTRACTABLE },
            { type: pkcs11js.CKA_SIGN },
            { type: pkcs11js.CKA_LABEL },
          ]);
          assert.deepEqual(
            flags.slice(0, 7).map((a) => a.value[0]),
            [1, 1, 1, 0, 1, 1, 1],
            `${k.label}: TOKEN PRIVATE SENSITIVE !EXTRACTABLE ALWAYS_SENSITIVE NEVER_EXTRACTABLE SIGN`,
          );
          assert.equal(flags[7]!.value.toString(), k.label);
          const secretAttr = k.algorithm.kind === 'rsa' ? pkcs11js.CKA_PRIVATE_EXPONENT : pkcs11js.CKA_VALUE;
          assert.equal(ckrOf(() => lib.C_GetAttributeValue(s, priv, [{ type: secretAttr }])), 'CKR_ATTRIBUTE_SENSITIVE', `${k.label}: reading the secret`);
          assert.equal(
            ckrOf(() => lib.C_WrapKey(s, { mechanism: pkcs11js.CKM_AES_KEY_WRAP_PAD }, wrappingKey, priv, Buffer.alloc(8192))),
            'CKR_KEY_UNEXTRACTABLE',
            `${k.label}: wrapping`,
          );
          const setExtractable = ckrOf(() => lib.C_SetAttributeValue(s, priv, [{ type: pkcs11js.CKA_EXTRACTABLE, value: true }]));
          assert.equal(setExtractable, 'CKR_ATTRIBUTE_READ_ONLY', `${k.label}: making it extractable`);
          const setInsensitive = ckrOf(() => lib.C_SetAttributeValue(s, priv, [{ type: pkcs11js.CKA_SENSITIVE, value: false }]));
          assert.equal(setInsensitive, 'CKR_ATTRIBUTE_READ_ONLY', `${k.label}: making it non-sensitive`);
        }
      });
      // The store still signs with them.
      const data = Buffer.from('still usable');
      assert.ok(verifies(await store.publicKey(ec.id), 'sha256', data, await store.sign(ec.id, data)));
    } finally {
      await store.close();
    }
  });

  it('destroy removes both halves from the token', async () => {
    const t = makeSoftHsmToken();
    const store = await open(configFor(t));
    try {
      const k = await store.generate('gone', { kind: 'ec', curve: 'P-384' });
      assert.equal(withTokenSession(t, (lib, s) => findById(lib, s, k.id).length), 2);
      await store.destroy(k.id);
      assert.equal(withTokenSession(t, (lib, s) => findById(lib, s, k.id).length), 0);
    } finally {
      await store.close();
    }
  });

  it('two stores on one token see each other\'s keys; a key destroyed by one is NotFound in the other', async () => {
    const t = makeSoftHsmToken();
    const a = await open(configFor(t));
    const b = await open({ ...configFor(t), sessions: 2 });
    try {
      const k = await a.generate('shared', { kind: 'ec', curve: 'P-256' });
      const data = Buffer.from('seen by b');
      assert.ok(verifies(await b.publicKey(k.id), 'sha256', data, await b.sign(k.id, data)));
      assert.deepEqual((await b.list()).map((i) => i.label), ['shared']);
      await rejectsWith(b.generate('shared'), 'AlreadyExists');
      await a.destroy(k.id);
      await rejectsWith(b.sign(k.id, data), 'NotFound');
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('refuses a wrong PIN, a missing token and a bad configuration with Invalid, never echoing the PIN', async () => {
    const t = makeSoftHsmToken();
    const e = await rejectsWith(openKeyStore({ ...configFor(t), pin: 'wrong-pin-1234' }), 'Invalid', /PIN/);
    assert.ok(!e.message.includes('wrong-pin-1234') && !String(e.hint).includes('wrong-pin-1234'));
    await rejectsWith(openKeyStore({ ...configFor(t), tokenLabel: 'no-such-token' }), 'Invalid', new RegExp(`no-such-token.*${t.tokenLabel}`));
    await rejectsWith(openKeyStore({ type: 'pkcs11', module: '/nonexistent/libpkcs11.so', tokenLabel: 'x', pin: '1' }), 'Invalid', /does not exist/);
    await rejectsWith(openKeyStore({ type: 'pkcs11', module: t.module, pin: t.pin }), 'Invalid', /tokenLabel.*slot/);
    const ok = await openKeyStore(configFor(t));
    await ok.close();
  });

  it('chooses the token by slot id when no label is given', async () => {
    const t = makeSoftHsmToken();
    const slotId = withTokenSession(t, (lib, s) => Number(lib.C_GetSessionInfo(s).slotID.readBigUInt64LE(0)));
    const store = await open({ type: 'pkcs11', module: t.module, slot: slotId, pin: t.pin });
    try {
      const k = await store.generate('by-slot');
      assert.equal(withTokenSession(t, (lib, s) => findById(lib, s, k.id).length), 2);
    } finally {
      await store.close();
    }
  });
});

describe('pkcs11 key store: a module without a mechanism', () => {
  it('refuses Ed25519 with a clear message when the module lacks CKM_EC_EDWARDS_KEY_PAIR_GEN', async () => {
    const t = makeSoftHsmToken();
    const lib = acquireModule(t.module);
    const slot = lib.C_GetSlotList(true).find((sl) => lib.C_GetTokenInfo(sl).label.trimEnd() === t.tokenLabel)!;
    const pool = new SessionPool(lib, slot, t.pin, 1);
    pool.start();
    const withoutEdwards = new Set(lib.C_GetMechanismList(slot).filter((m) => m !== CKM_EC_EDWARDS_KEY_PAIR_GEN && m !== CKM_EDDSA));
    const store = new Pkcs11KeyStore(lib, pool, withoutEdwards, 'a module without EdDSA');
    try {
      await rejectsWith(store.generate('ed', { kind: 'ed25519' }), 'Invalid', /Ed25519.*not supported.*CKM_EC_EDWARDS_KEY_PAIR_GEN/);
      const ec = await store.generate('ec', { kind: 'ec', curve: 'P-256' });
      assert.equal(ec.label, 'ec');
    } finally {
      await store.close(); // releases the module use acquired above
    }
  });
});

describe('ECDSA raw r||s to DER', () => {
  it('strips leading zeros and keeps integers positive', () => {
    const r = Buffer.alloc(32, 0);
    r[31] = 1;
    const s = Buffer.alloc(32, 0xff);
    assert.equal(ecdsaRawToDer(Buffer.concat([r, s])).toString('hex'), `3026020101022100${'ff'.repeat(32)}`);
  });
});
