// The soft key store: the shared suite, then what only a file-backed store must prove (file modes, sealing, KEK handling, tampering).
import assert from 'node:assert/strict';
import { randomBytes, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { KeyStore, SoftKeyStoreConfig } from '../../src/keystore/keystore.js';
import { openKeyStore } from '../../src/keystore/registry.js';
import { Kek, loadKek } from '../../src/keystore/soft/kek.js';
import { openKeyFile } from '../../src/keystore/soft/key-file.js';
import { openSoftKeyStore } from '../../src/keystore/soft/store.js';
import { tempDir } from '../helpers/tmp.js';
import { ALGORITHMS, assertNoSecrets, keyStoreSuite, rejectsWith, verifies } from './shared-suite.js';

const dirs: Array<{ remove(): void }> = [];
after(() => dirs.forEach((d) => d.remove()));

function newDir(): string {
  const d = tempDir('tp-softks-');
  dirs.push(d);
  return d.path;
}

const configs = new WeakMap<KeyStore, SoftKeyStoreConfig>();

async function open(config: SoftKeyStoreConfig): Promise<KeyStore> {
  const s = await openKeyStore(config);
  configs.set(s, config);
  return s;
}

/** Decrypts a key file behind the store's back, with the same codec the store uses: the test-only way to see a key. */
async function privateKeyOf(dir: string, id: string): Promise<KeyObject> {
  const kek = await loadKek({ dir });
  const path = join(dir, 'keys', `${id}.json`);
  return openKeyFile(readFileSync(path, 'utf8'), id, kek, path).privateKey;
}

/** The secret parts of a key: d (and p, q for RSA), plus its PKCS#8 DER. */
function secretParts(key: KeyObject): Buffer[] {
  const jwk = key.export({ format: 'jwk' });
  const parts = [jwk.d, jwk.p, jwk.q].filter((v): v is string => typeof v === 'string').map((v) => Buffer.from(v, 'base64url'));
  return [...parts, key.export({ format: 'der', type: 'pkcs8' })];
}

keyStoreSuite({
  name: 'soft',
  fresh: () => open({ type: 'soft', dir: newDir() }),
  reopen: (closed) => open(configs.get(closed)!),
  secretsOf: async (store, id) => secretParts(await privateKeyOf(configs.get(store)!.dir, id)),
});

function allFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? allFiles(join(dir, e.name)) : [join(dir, e.name)]));
}

describe('soft key store files and KEK', () => {
  it('writes key files 0600 in a 0700 directory, creates <dir>/kek 0600, and no file holds a plaintext key', async () => {
    const dir = newDir();
    const s = await open({ type: 'soft', dir });
    try {
      const ids = [];
      for (const a of ALGORITHMS) ids.push((await s.generate(`f/${a.name}`, a.algorithm)).id);
      for (const id of ids) await s.sign(id, Buffer.from('x'));
      assert.equal(statSync(join(dir, 'kek')).mode & 0o777, 0o600);
      assert.equal(statSync(join(dir, 'keys')).mode & 0o777, 0o700);
      const keyFiles = readdirSync(join(dir, 'keys'));
      assert.deepEqual(keyFiles.sort(), ids.map((id) => `${id}.json`).sort(), 'one file per key, no temporary files left');
      for (const f of keyFiles) assert.equal(statSync(join(dir, 'keys', f)).mode & 0o777, 0o600, f);

      const secrets = (await Promise.all(ids.map(async (id) => secretParts(await privateKeyOf(dir, id))))).flat();
      assert.ok(secrets.length >= ALGORITHMS.length * 2);
      const kekBytes = Buffer.from(readFileSync(join(dir, 'kek'), 'utf8').trim(), 'hex');
      assert.equal(kekBytes.length, 32);
      for (const file of allFiles(dir)) {
        assertNoSecrets(file, readFileSync(file), secrets);
        if (!file.endsWith('/kek')) assertNoSecrets(file, readFileSync(file), [kekBytes]);
      }
    } finally {
      await s.close();
    }
  });

  it('seals each write with a fresh IV: the same key sealed twice differs', async () => {
    const dir = newDir();
    const s = await open({ type: 'soft', dir });
    const ivs = new Set<string>();
    try {
      for (let i = 0; i < 5; i++) {
        const { id } = await s.generate(`iv/${i}`);
        ivs.add(JSON.parse(readFileSync(join(dir, 'keys', `${id}.json`), 'utf8')).iv);
      }
      assert.equal(ivs.size, 5);
    } finally {
      await s.close();
    }
  });

  it('destroy overwrites and removes the key file', async () => {
    const dir = newDir();
    const s = await open({ type: 'soft', dir });
    const { id } = await s.generate('gone');
    const file = join(dir, 'keys', `${id}.json`);
    assert.ok(existsSync(file));
    await s.destroy(id);
    assert.ok(!existsSync(file));
    await s.close();
  });

  it('a wrong KEK fails clearly at open (Invalid, naming the file and both KEK ids)', async () => {
    const dir = newDir();
    const kek = randomBytes(32);
    const s = await open({ type: 'soft', dir, kek });
    const { id } = await s.generate('k');
    await s.close();
    const e = await rejectsWith(openKeyStore({ type: 'soft', dir, kek: randomBytes(32) }), 'Invalid', /different key encryption key/);
    assert.match(e.message, new RegExp(`${id}\\.json`));
    assert.match(e.message, new RegExp(new Kek(kek, 'x').id));
    // The right one still works.
    const r = await openKeyStore({ type: 'soft', dir, kek });
    assert.equal((await r.list()).length, 1);
    await r.close();
  });

  it('a tampered key file fails clearly at open (Internal), whatever byte changed', async () => {
    const dir = newDir();
    const kek = randomBytes(32);
    const s = await open({ type: 'soft', dir, kek });
    const { id } = await s.generate('victim', { kind: 'ec', curve: 'P-256' });
    const other = await s.generate('other', { kind: 'ec', curve: 'P-256' });
    await s.close();
    const file = join(dir, 'keys', `${id}.json`);
    const original = readFileSync(file, 'utf8');
    const json = JSON.parse(original);

    const tamperings: Array<[string, string]> = [
      ['ciphertext bit', JSON.stringify({ ...json, ciphertext: flipB64(json.ciphertext) })],
      ['tag bit', JSON.stringify({ ...json, tag: flipB64(json.tag) })],
      ['iv bit', JSON.stringify({ ...json, iv: flipB64(json.iv) })],
      ['label', JSON.stringify({ ...json, label: 'victim2' })],
      ['algorithm', JSON.stringify({ ...json, algorithm: { kind: 'ec', curve: 'P-384' } })],
      ['public key', JSON.stringify({ ...json, publicKey: JSON.parse(readFileSync(join(dir, 'keys', `${other.id}.json`), 'utf8')).publicKey })],
      ['swapped file', readFileSync(join(dir, 'keys', `${other.id}.json`), 'utf8')],
      ['truncated', original.slice(0, original.length / 2)],
    ];
    for (const [what, text] of tamperings) {
      writeFileSync(file, text);
      const e = await rejectsWith(openKeyStore({ type: 'soft', dir, kek }), 'Internal', /modified or corrupted/);
      assert.match(e.message, new RegExp(`${id}\\.json`), what);
    }
    // Every single byte flipped in turn: always a TrustplaneError, never a crash or a silent success.
    const bytes = Buffer.from(original);
    for (let i = 0; i < bytes.length; i += 7) {
      const t = Buffer.from(bytes);
      t[i] = t[i]! ^ 0x01;
      writeFileSync(file, t);
      try {
        const r = await openKeyStore({ type: 'soft', dir, kek });
        // A flip inside JSON whitespace or to an equivalent encoding can leave the content intact; then it must still work.
        const pub = await r.publicKey(id);
        assert.ok(verifies(pub, 'sha256', Buffer.from('d'), await r.sign(id, Buffer.from('d'))), `byte ${i}`);
        await r.close();
      } catch (e) {
        assert.ok(e instanceof Error && 'reason' in e && ['Internal', 'Invalid'].includes((e as { reason: string }).reason), `byte ${i}: ${String(e)}`);
      }
    }
    writeFileSync(file, original);
    const r = await openKeyStore({ type: 'soft', dir, kek });
    assert.equal((await r.list()).length, 2);
    await r.close();
  });

  it('refuses a KEK file readable by group or others, saying to chmod 600', async () => {
    const dir = newDir();
    const s = await open({ type: 'soft', dir });
    await s.close();
    chmodSync(join(dir, 'kek'), 0o644);
    await rejectsWith(openKeyStore({ type: 'soft', dir }), 'Invalid', /0644.*chmod 600/s);
    const kekFile = join(newDir(), 'kek.hex');
    writeFileSync(kekFile, randomBytes(32).toString('hex') + '\n', { mode: 0o640 });
    chmodSync(kekFile, 0o640);
    await rejectsWith(openKeyStore({ type: 'soft', dir: newDir(), kekFile }), 'Invalid', /chmod 600/);
    await rejectsWith(openSoftKeyStore({ type: 'soft', dir: newDir() }, { TRUSTPLANE_KEK_FILE: kekFile }), 'Invalid', /chmod 600/);
    chmodSync(kekFile, 0o600);
    const ok = await openKeyStore({ type: 'soft', dir: newDir(), kekFile });
    await ok.close();
  });

  it('takes the KEK from config.kek, then kekFile, then TRUSTPLANE_KEK_FILE, then <dir>/kek', async () => {
    const kekFile = join(newDir(), 'kek');
    const fromFile = randomBytes(32);
    writeFileSync(kekFile, fromFile.toString('base64'), { mode: 0o600 });
    const direct = randomBytes(32);
    const dir = newDir();
    assert.equal((await loadKek({ dir, kek: direct, kekFile })).id, new Kek(direct, 'x').id);
    assert.equal((await loadKek({ dir, kekFile, env: {} })).id, new Kek(fromFile, 'x').id);
    assert.equal((await loadKek({ dir, env: { TRUSTPLANE_KEK_FILE: kekFile } })).id, new Kek(fromFile, 'x').id);
    assert.ok(!existsSync(join(dir, 'kek')));
    const made = await loadKek({ dir, env: {} });
    assert.ok(existsSync(join(dir, 'kek')));
    assert.equal((await loadKek({ dir, env: {} })).id, made.id, 'the created KEK is reused');
    await rejectsWith(loadKek({ dir, kekFile: join(dir, 'missing') }), 'Invalid', /does not exist/);
    await rejectsWith(loadKek({ dir, kek: randomBytes(16) }), 'Invalid', /32 bytes/);
    const short = join(newDir(), 'short');
    writeFileSync(short, 'abcd', { mode: 0o600 });
    await rejectsWith(loadKek({ dir, kekFile: short }), 'Invalid', /32-byte/);
    // A KEK shows only its id.
    assert.ok(!JSON.stringify(made).includes(made.bytes().toString('hex')));
  });
});

describe('key store registry', () => {
  it('opens a backend by its type name and refuses an unknown one, listing the known types', async () => {
    const s = await openKeyStore({ type: 'soft', dir: newDir() });
    assert.equal(s.type, 'soft');
    await s.close();
    await rejectsWith(openKeyStore({ type: 'vault' } as never), 'Invalid', /"vault".*soft, pkcs11/);
    await rejectsWith(openKeyStore({} as never), 'Invalid', /soft, pkcs11/);
  });
});

function flipB64(v: string): string {
  const b = Buffer.from(v, 'base64');
  b[0] = b[0]! ^ 0x01;
  return b.toString('base64');
}
