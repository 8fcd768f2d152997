// Security invariant: no CA private key in any API response, log line, state entry or file outside the key store's sealed form.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { KeyObject } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadKek } from '../../src/keystore/soft/kek.js';
import { openKeyFile } from '../../src/keystore/soft/key-file.js';
import { caPaths } from '../../src/util/datadir.js';
import { tp } from '../helpers/cli.js';
import { startCaChild } from './helpers.js';
import { opensslCsr } from '../helpers/openssl.js';
import { tempDir } from '../helpers/tmp.js';

function allFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? allFiles(join(dir, e.name)) : [join(dir, e.name)]));
}

/** Every form a leaked key could take: raw scalar/primes and PKCS#8, in raw bytes, hex, base64 and base64url. */
function forms(key: KeyObject): string[] {
  const jwk = key.export({ format: 'jwk' });
  const raw = [jwk.d, jwk.p, jwk.q].filter((v): v is string => typeof v === 'string').map((v) => Buffer.from(v, 'base64url'));
  raw.push(key.export({ format: 'der', type: 'pkcs8' }));
  return raw.flatMap((b) => [b.toString('latin1'), b.toString('hex'), b.toString('base64'), b.toString('base64url')]).filter((s) => s.length >= 16);
}

test('no CA private key leaks into responses, logs, state, audit or any file outside the sealed key files', async () => {
  const tmp = tempDir('tp-secrets-');
  const dataDir = join(tmp.path, 'data');
  const p = caPaths(dataDir);
  const ca = await startCaChild(dataDir);
  const responses: string[] = [];
  try {
    const fleet = ca.fleet();
    const keep = (v: unknown) => responses.push(JSON.stringify(v));
    keep(await fleet.createCluster({ name: 'one' }));
    keep(await fleet.createCluster({ name: 'two', keyAlgorithm: { kind: 'rsa', bits: 2048 } }));
    keep(await fleet.createCluster({ name: 'three', keyAlgorithm: { kind: 'ed25519' } }));
    for (const c of ['one', 'two', 'three']) {
      keep(await fleet.sign(c, { signer: 'kubernetes.io/kube-apiserver-client-kubelet', csr: opensslCsr(tmp.path, c, { subj: '/O=system:nodes/CN=system:node:n' }) }));
      keep(await fleet.prepareGeneration(c, 'root'));
      keep(await fleet.activateGeneration(c, 'root', 2));
      keep(await fleet.sign(c, { signer: 'kubernetes.io/kube-apiserver-client-kubelet', csr: opensslCsr(tmp.path, `${c}b`, { subj: '/O=system:nodes/CN=system:node:n' }) }));
      await fleet.sign(c, { signer: 'kubernetes.io/kubelet-serving', csr: 'garbage' }).catch((e: Error) => keep({ error: e.message }));
      keep(await fleet.describeCluster(c));
    }
    keep(await fleet.listClusters());
    keep(await fleet.service());
    for (const args of [['clusters', 'list', '-o', 'json'], ['clusters', 'describe', 'one', '-o', 'json'], ['ca', 'status', '-o', 'json'], ['clusters', 'describe', 'nope']]) {
      const r = tp([...args, '--data-dir', dataDir]);
      responses.push(r.stdout, r.stderr);
    }
  } finally {
    await ca.stop('SIGTERM');
  }
  responses.push(ca.output());

  // Open the sealed key files behind the service's back, with its own KEK: the test-only way to see the keys.
  const kek = await loadKek({ dir: p.keystore });
  const keyFiles = readdirSync(join(p.keystore, 'keys')).filter((f) => f.endsWith('.json'));
  assert.ok(keyFiles.length >= 3 * 3 + 3 + 1, `CA keys present (${keyFiles.length})`);
  const secrets = keyFiles.flatMap((f) => {
    const path = join(p.keystore, 'keys', f);
    return forms(openKeyFile(readFileSync(path, 'utf8'), f.slice(0, -5), kek, path).privateKey);
  });
  const sealed = new Set(keyFiles.map((f) => join(p.keystore, 'keys', f)));
  const scanned = allFiles(dataDir).filter((f) => !sealed.has(f) && f !== join(p.keystore, 'kek'));
  assert.ok(scanned.some((f) => f === p.audit) && scanned.some((f) => f === p.state));
  for (const f of scanned) {
    const text = readFileSync(f).toString('latin1');
    for (const s of secrets) assert.ok(!text.includes(s), `a CA private key appears in ${f}`);
    if (f !== p.fleetKey) assert.doesNotMatch(text, /PRIVATE KEY/, `${f} holds a private key`);
  }
  for (const r of responses) {
    for (const s of secrets) assert.ok(!r.includes(s), 'a CA private key appears in an API response or log output');
    assert.doesNotMatch(r, /PRIVATE KEY/);
  }
  tmp.remove();
});
