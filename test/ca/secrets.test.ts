// Security invariant: no CA private key in any API response, log line, state entry or file outside the key store's sealed form.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { KeyObject } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
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
    // The CLI commands that talk to the CA service itself (the `clusters` group needs a control plane host, absent here),
    // each checked for what it should print, so that the scan below reads real output and not a start-up error.
    const csrFile = join(tmp.path, 'cli.csr');
    writeFileSync(csrFile, opensslCsr(tmp.path, 'cli', { subj: '/O=system:nodes/CN=system:node:cli' }));
    const kubelet = ['--signer', 'kubernetes.io/kube-apiserver-client-kubelet', '--csr', csrFile];
    const cli: Array<{ args: string[]; expect: (r: ReturnType<typeof tp>) => void }> = [
      { args: ['ca', 'status', '-o', 'json'], expect: (r) => assert.equal((JSON.parse(r.stdout) as { clusters: number }).clusters, 3, r.stderr) },
      { args: ['ca', 'sign', '--cluster', 'two', ...kubelet], expect: (r) => assert.match(r.stdout, /^-----BEGIN CERTIFICATE-----/, r.stderr) },
      { args: ['ca', 'sign', '--cluster', 'nope', ...kubelet], expect: (r) => (assert.notEqual(r.status, 0), assert.match(r.stderr, /cluster "nope" not found/)) },
    ];
    for (const c of cli) {
      const r = tp([...c.args, '--data-dir', dataDir]);
      c.expect(r);
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

  // What is scanned holds what it should, so a scan that finds nothing means something: the service's log, every
  // decision in the audit log, every cluster in the state, and a non-empty answer to every call.
  assert.match(ca.output(), /^trustplane CA service listening on https:\/\/127\.0\.0\.1:\d+ \(key store: soft/m);
  assert.match(ca.output(), /^stopping the CA service$/m);
  const audit = readFileSync(p.audit, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  const entries = (op: string, decision: string, cluster: string) => audit.filter((e) => e.op === op && e.decision === decision && e.cluster === cluster);
  for (const c of ['one', 'two', 'three']) {
    assert.equal(entries('create-cluster', 'allow', c).length, 1, `create-cluster ${c} in the audit log`);
    assert.equal(entries('activate-generation', 'allow', c).length, 1, `activate-generation ${c} in the audit log`);
    assert.equal(entries('sign', 'allow', c).length, c === 'two' ? 3 : 2, `the certificates issued for ${c} in the audit log`);
    assert.match(String(entries('sign', 'deny', c)[0]?.reason), /PEM block/, `the refused garbage CSR of ${c} in the audit log`);
  }
  assert.equal(entries('sign', 'deny', 'nope')[0]?.reason, 'unknown cluster');
  const state = readFileSync(p.state, 'utf8');
  for (const c of ['one', 'two', 'three']) assert.ok(state.includes(`"${c}"`), `cluster ${c} in the state file`);
  // Empty: only the stderr of the two CLI commands that succeeded and the stdout of the refused one.
  assert.equal(responses.filter((r) => r.length === 0).length, 3, 'every API response and log has content');
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
