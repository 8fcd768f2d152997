// One suite that every KeyStore backend passes: generation, signing, labels, listing, destruction, persistence, concurrency, no key exposure.
import assert from 'node:assert/strict';
import { createPublicKey, verify } from 'node:crypto';
import { describe, it } from 'node:test';
import { inspect } from 'node:util';
import type { KeyAlgorithm } from '../../src/pki/types.js';
import type { KeyInfo, KeyStore } from '../../src/keystore/keystore.js';
import { TrustplaneError, type Reason } from '../../src/util/errors.js';

export interface KeyStoreHarness {
  name: string;
  /** A new, empty store. */
  fresh(): Promise<KeyStore>;
  /** Opens again, after close(), the store that `closed` was. */
  reopen(closed: KeyStore): Promise<KeyStore>;
  /** Private key bytes that the test can learn for key `id` behind the store's back, to search outputs for. */
  secretsOf?(store: KeyStore, id: string): Promise<Buffer[]>;
}

export const ALGORITHMS: Array<{ name: string; algorithm: KeyAlgorithm; hash: string | null; jwk: { kty: string; crv?: string } }> = [
  { name: 'EC P-256', algorithm: { kind: 'ec', curve: 'P-256' }, hash: 'sha256', jwk: { kty: 'EC', crv: 'P-256' } },
  { name: 'EC P-384', algorithm: { kind: 'ec', curve: 'P-384' }, hash: 'sha384', jwk: { kty: 'EC', crv: 'P-384' } },
  { name: 'RSA-2048', algorithm: { kind: 'rsa', bits: 2048 }, hash: 'sha256', jwk: { kty: 'RSA' } },
  { name: 'Ed25519', algorithm: { kind: 'ed25519' }, hash: null, jwk: { kty: 'OKP', crv: 'Ed25519' } },
];

/** Verifies a signature as a relying party would: node:crypto over the store's SPKI, ECDSA in DER. */
export function verifies(spki: Buffer, hash: string | null, data: Buffer, signature: Buffer): boolean {
  return verify(hash, data, { key: spki, format: 'der', type: 'spki' }, signature);
}

export async function rejectsWith(p: Promise<unknown>, reason: Reason, pattern?: RegExp): Promise<TrustplaneError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof TrustplaneError, `expected a TrustplaneError(${reason}), got ${inspect(caught)}`);
  assert.equal(caught.reason, reason, `expected reason ${reason}: ${caught.message}`);
  if (pattern) assert.match(caught.message + ' ' + (caught.hint ?? ''), pattern);
  return caught;
}

/** The forms in which key bytes could leak into text: raw, hex, base64, base64url. */
export function leakForms(secret: Buffer): string[] {
  return [secret.toString('hex'), secret.toString('base64').replace(/=+$/, ''), secret.toString('base64url')];
}

export function assertNoSecrets(what: string, text: string | Buffer, secrets: Buffer[]): void {
  const t = Buffer.isBuffer(text) ? text : Buffer.from(text);
  const s = t.toString('latin1');
  assert.ok(!/PRIVATE KEY/.test(s), `${what} contains "PRIVATE KEY"`);
  for (const secret of secrets) {
    assert.ok(t.indexOf(secret) < 0, `${what} contains private key bytes`);
    for (const form of leakForms(secret)) assert.ok(!s.includes(form), `${what} contains private key bytes (encoded)`);
  }
}

export function keyStoreSuite(h: KeyStoreHarness): void {
  const withStore = async (fn: (s: KeyStore) => Promise<void>) => {
    const s = await h.fresh();
    try {
      await fn(s);
    } finally {
      await s.close();
    }
  };

  describe(`KeyStore conformance: ${h.name}`, () => {
    for (const a of ALGORITHMS) {
      it(`generates ${a.name} keys whose signatures verify against publicKey()`, () =>
        withStore(async (s) => {
          const info = await s.generate(`k/${a.name}`, a.algorithm);
          assert.match(info.id, /^[0-9a-f]{32}$/);
          assert.equal(info.label, `k/${a.name}`);
          assert.deepEqual(info.algorithm, a.algorithm);
          assert.ok(Math.abs(info.createdAt.getTime() - Date.now()) < 60_000);
          const spki = await s.publicKey(info.id);
          const jwk = createPublicKey({ key: spki, format: 'der', type: 'spki' }).export({ format: 'jwk' });
          assert.equal(jwk.kty, a.jwk.kty);
          if (a.jwk.crv) assert.equal(jwk.crv, a.jwk.crv);
          if (a.algorithm.kind === 'rsa') assert.equal(Buffer.from(jwk.n!, 'base64url').length * 8, a.algorithm.bits);

          const data = Buffer.from(`to be signed by ${a.name}`);
          const sig = await s.sign(info.id, data);
          assert.ok(verifies(spki, a.hash, data, sig), 'signature verifies');
          assert.ok(!verifies(spki, a.hash, Buffer.from('other data'), sig), 'signature is bound to the data');
          if (a.algorithm.kind === 'ec') assert.equal(sig[0], 0x30, 'ECDSA signature is DER (SEQUENCE)');
          if (a.algorithm.kind === 'ed25519') assert.equal(sig.length, 64);
          if (a.algorithm.kind === 'rsa') assert.equal(sig.length, a.algorithm.bits / 8);

          const signer = await s.signer(info.id);
          assert.deepEqual(signer.algorithm, a.algorithm);
          assert.deepEqual(signer.publicKey, spki);
          const sig2 = await signer.sign(data);
          assert.ok(verifies(signer.publicKey, a.hash, data, sig2));
        }));
    }

    it('generates EC P-256 when no algorithm is named', () =>
      withStore(async (s) => {
        const info = await s.generate('default');
        assert.deepEqual(info.algorithm, { kind: 'ec', curve: 'P-256' });
      }));

    it('accepts RSA at the top of its range (4096 bits)', () =>
      withStore(async (s) => {
        const k = await s.generate('rsa/4096', { kind: 'rsa', bits: 4096 });
        const data = Buffer.from('big');
        const sig = await s.sign(k.id, data);
        assert.equal(sig.length, 512);
        assert.ok(verifies(await s.publicKey(k.id), 'sha256', data, sig));
      }));

    it('refuses unknown algorithms, RSA outside 2048–4096 and bad labels with Invalid', () =>
      withStore(async (s) => {
        await rejectsWith(s.generate('r1024', { kind: 'rsa', bits: 1024 }), 'Invalid', /1024/);
        await rejectsWith(s.generate('r8192', { kind: 'rsa', bits: 8192 }), 'Invalid', /8192/);
        await rejectsWith(s.generate('dsa', { kind: 'dsa' } as unknown as KeyAlgorithm), 'Invalid', /dsa.*not supported/);
        await rejectsWith(s.generate('p521', { kind: 'ec', curve: 'P-521' } as unknown as KeyAlgorithm), 'Invalid', /P-521/);
        await rejectsWith(s.generate('', { kind: 'ed25519' }), 'Invalid', /label/);
        assert.deepEqual(await s.list(), [], 'nothing was created');
      }));

    it('keeps labels unique: a duplicate is AlreadyExists, and a destroyed key frees its label', () =>
      withStore(async (s) => {
        const a = await s.generate('cluster/prod/root/g1', { kind: 'ec', curve: 'P-256' });
        const e = await rejectsWith(s.generate('cluster/prod/root/g1', { kind: 'ed25519' }), 'AlreadyExists', /cluster\/prod\/root\/g1/);
        assert.match(e.message, new RegExp(a.id));
        // Concurrent attempts at one label: exactly one wins.
        const results = await Promise.allSettled([1, 2, 3, 4].map(() => s.generate('race', { kind: 'ec', curve: 'P-256' })));
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
        for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as TrustplaneError).reason, 'AlreadyExists');
        await s.destroy(a.id);
        const again = await s.generate('cluster/prod/root/g1', { kind: 'ec', curve: 'P-256' });
        assert.notEqual(again.id, a.id);
      }));

    it('lists its keys, oldest first', () =>
      withStore(async (s) => {
        assert.deepEqual(await s.list(), []);
        const made: KeyInfo[] = [];
        for (const l of ['one', 'two', 'three']) made.push(await s.generate(l, l === 'two' ? { kind: 'ed25519' } : { kind: 'ec', curve: 'P-256' }));
        const listed = await s.list();
        assert.deepEqual(
          listed.map((k) => [k.id, k.label, k.algorithm]),
          made.map((k) => [k.id, k.label, k.algorithm]),
        );
        for (const k of listed) assert.ok(k.createdAt instanceof Date);
        listed[0]!.label = 'changed by caller';
        assert.equal((await s.list())[0]!.label, 'one', 'list returns copies');
      }));

    it('destroys keys: later use is NotFound, and so is an unknown or malformed id', () =>
      withStore(async (s) => {
        const k = await s.generate('doomed', { kind: 'ec', curve: 'P-256' });
        const keep = await s.generate('kept', { kind: 'ec', curve: 'P-256' });
        const signer = await s.signer(k.id);
        await s.destroy(k.id);
        await rejectsWith(s.sign(k.id, Buffer.from('x')), 'NotFound', new RegExp(k.id));
        await rejectsWith(s.publicKey(k.id), 'NotFound');
        await rejectsWith(s.signer(k.id), 'NotFound');
        await rejectsWith(signer.sign(Buffer.from('x')), 'NotFound');
        await rejectsWith(s.destroy(k.id), 'NotFound');
        await rejectsWith(s.sign('0'.repeat(32), Buffer.from('x')), 'NotFound');
        await rejectsWith(s.sign('../../etc/passwd', Buffer.from('x')), 'NotFound');
        assert.deepEqual((await s.list()).map((i) => i.id), [keep.id]);
        assert.ok(verifies(await s.publicKey(keep.id), 'sha256', Buffer.from('y'), await s.sign(keep.id, Buffer.from('y'))));
      }));

    it('keeps keys across close and reopen; a closed store refuses use', async () => {
      const s = await h.fresh();
      const a = await s.generate('persist/ec', { kind: 'ec', curve: 'P-384' });
      const b = await s.generate('persist/ed', { kind: 'ed25519' });
      const gone = await s.generate('persist/gone', { kind: 'ec', curve: 'P-256' });
      await s.destroy(gone.id);
      const pubA = await s.publicKey(a.id);
      const pubB = await s.publicKey(b.id);
      await s.close();
      await rejectsWith(s.sign(a.id, Buffer.from('x')), 'Internal', /closed/);
      const r = await h.reopen(s);
      try {
        const listed = await r.list();
        assert.deepEqual(
          listed.map((k) => [k.id, k.label, k.algorithm, k.createdAt.getTime()]),
          [a, b].map((k) => [k.id, k.label, k.algorithm, k.createdAt.getTime()]),
        );
        assert.deepEqual(await r.publicKey(a.id), pubA);
        assert.deepEqual(await r.publicKey(b.id), pubB);
        const data = Buffer.from('after reopen');
        assert.ok(verifies(pubA, 'sha384', data, await r.sign(a.id, data)));
        assert.ok(verifies(pubB, null, data, await r.sign(b.id, data)));
        await rejectsWith(r.generate('persist/ec', { kind: 'ec', curve: 'P-256' }), 'AlreadyExists');
        await rejectsWith(r.publicKey(gone.id), 'NotFound');
      } finally {
        await r.close();
      }
    });

    it('signs 200 requests in parallel, each verifying', () =>
      withStore(async (s) => {
        const keys = [await s.generate('par/p256', { kind: 'ec', curve: 'P-256' }), await s.generate('par/ed', { kind: 'ed25519' })];
        const pubs = await Promise.all(keys.map((k) => s.publicKey(k.id)));
        const jobs = Array.from({ length: 200 }, (_, i) => {
          const data = Buffer.from(`message ${i}`);
          const k = i % 2;
          return s.sign(keys[k]!.id, data).then((sig) => verifies(pubs[k]!, k === 0 ? 'sha256' : null, data, sig));
        });
        const ok = await Promise.all(jobs);
        assert.equal(ok.filter(Boolean).length, 200);
      }));

    it('exposes no private key through the store, its methods, its outputs or its errors', () =>
      withStore(async (s) => {
        const keys = [];
        for (const a of ALGORITHMS) keys.push(await s.generate(`secret/${a.name}`, a.algorithm));
        const secrets = h.secretsOf ? (await Promise.all(keys.map((k) => h.secretsOf!(s, k.id)))).flat() : [];
        for (const k of keys) await s.sign(k.id, Buffer.from('warm the caches'));

        const errors: unknown[] = [];
        const collect = (p: Promise<unknown>) => p.then(() => assert.fail('expected a failure'), (e) => errors.push(e));
        await collect(s.generate('secret/EC P-256', { kind: 'ec', curve: 'P-256' }));
        await collect(s.generate('bad', { kind: 'rsa', bits: 1024 }));
        await collect(s.sign('f'.repeat(32), Buffer.from('x')));
        await collect(s.sign(keys[0]!.id, 'not a buffer' as unknown as Buffer));

        const signers = await Promise.all(keys.map((k) => s.signer(k.id)));
        const views: Array<[string, string]> = [
          ['JSON.stringify(store)', JSON.stringify(s) ?? ''],
          ['inspect(store)', inspect(s, { depth: Infinity, showHidden: true, getters: true })],
          ['inspect(list())', inspect(await s.list(), { depth: Infinity })],
          ['JSON.stringify(list())', JSON.stringify(await s.list())],
          ['inspect(signers)', inspect(signers, { depth: Infinity, showHidden: true })],
          ['JSON.stringify(signers)', JSON.stringify(signers)],
          ['inspect(errors)', inspect(errors, { depth: Infinity, showHidden: true })],
          ['JSON.stringify(errors)', JSON.stringify(errors.map((e) => ({ ...(e as object), message: (e as Error).message })))],
        ];
        for (const [what, text] of views) assertNoSecrets(what, text, secrets);

        // Nothing on the store's surface offers a way out.
        const names = new Set<string>();
        for (let o: object | null = s; o && o !== Object.prototype; o = Object.getPrototypeOf(o)) for (const n of Object.getOwnPropertyNames(o)) names.add(n);
        for (const n of names) assert.ok(!/export|private|secret|wrap|pkcs8|raw|material/i.test(n), `store has a member named ${n}`);
        for (const sg of signers) assert.deepEqual(Object.keys(sg).sort(), ['algorithm', 'publicKey', 'sign']);
      }));
  });
}
