// Fault: the embedded store's disk fills up under a write load (a 4 MiB tmpfs), then space returns.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startApiServer, type RunningApiServer } from '../../src/apiserver/index.js';
import { toStatus } from '../../src/apiserver/status.js';
import { ApiClient } from '../../src/node/api-client.js';
import { openStore, type Store } from '../../src/store/client.js';
import { StoreInDoubtError } from '../../src/store/errors.js';
import { TrustplaneError } from '../../src/util/errors.js';
import { waitFor } from '../../src/util/wait.js';
import { makeOpensslCa } from '../helpers/openssl-certs.js';
import { b, startTestStore, tempDir, type TestStore } from '../store/server/helpers.js';

const NO_SPACE = 'etcdserver: mvcc: database space exceeded';

describe('fault: the store disk is full', { timeout: 90_000 }, () => {
  const mnt = tempDir('tp-fault-full-');
  let mounted = false;
  let ts: TestStore | undefined;
  let store: Store | undefined;
  let api: RunningApiServer | undefined;
  let kube: ApiClient | undefined;
  const filler = join(mnt, 'filler');
  const certs = tempDir('tp-fault-full-certs-');

  before(() => {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt]);
    mounted = true;
  });
  after(async () => {
    kube?.close();
    await api?.close();
    await store?.close();
    await ts?.close();
    // Lazy, so a failure that left a file open still unmounts.
    if (mounted) execFileSync('umount', ['-l', mnt]);
    rmSync(mnt, { recursive: true, force: true });
    rmSync(certs, { recursive: true, force: true });
  });

  const open = async (t: TestStore) =>
    openStore({ endpoints: [t.server.endpoint], tls: { ca: t.pki.ca.cert, cert: t.pki.client.cert, key: t.pki.client.key }, timeoutMs: 3000 });

  it('refuses writes with NOSPACE, keeps every acknowledged write and serving reads, and takes writes again once space returns', async () => {
    ts = await startTestStore({ dir: mnt });
    store = await open(ts);
    // Leave the store about 400 KiB, so a modest load fills the disk.
    const fs = statfsSync(mnt);
    writeFileSync(filler, Buffer.alloc(Math.max(0, fs.bavail * fs.bsize - 400 * 1024)));

    const acked = new Map<string, string>();
    const failures: unknown[] = [];
    let n = 0;
    const writer = async () => {
      // Each writer goes on past its first refusal, to show that refusals stay refusals under load.
      while (failures.length < 40 && n < 4000) {
        const key = `/registry/fault/${n++}`;
        const value = `${key} `.repeat(60);
        try {
          await store!.put(key, value);
          acked.set(key, value);
        } catch (e) {
          failures.push(e);
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, writer));
    assert.ok(acked.size > 0, 'some writes were acknowledged before the disk filled');
    assert.ok(failures.length >= 40, `the disk filled within ${n} writes`);

    // What a client of the store sees: etcd's NOSPACE answer, at once, as an Unavailable that names the cause.
    for (const e of failures) {
      assert.ok(e instanceof TrustplaneError, String(e));
      assert.equal(e.reason, 'Unavailable');
      assert.match(e.message, /etcdserver: mvcc: database space exceeded \(the store is out of disk space; nothing was written\)/);
      assert.match(e.hint ?? '', /free space on the store's disk/);
    }
    // Through a running API server: a 503 Status whose message names the cause.
    const ca = makeOpensslCa('cluster root CA', certs);
    const serving = ca.issue('apiserver', { cn: 'kube-apiserver', sans: ['IP:127.0.0.1'], eku: ['serverAuth'] });
    const admin = ca.issue('admin', { cn: 'admin', o: 'system:masters', eku: ['clientAuth'] });
    api = await startApiServer({ cluster: 'full', tls: { cert: serving.cert, key: serving.key }, clientCa: ca.cert, store });
    kube = new ApiClient(api.url, { cert: admin.cert, key: admin.key, ca: ca.cert });
    const lease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'full' }, spec: { holderIdentity: 'x'.repeat(200_000) } };
    const refused = await kube.post('/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases', lease).then(
      () => undefined,
      (e: unknown) => e as { code?: number; statusReason?: string; message: string },
    );
    assert.equal(refused?.code, 503, String(refused?.message));
    assert.equal(refused?.statusReason, 'ServiceUnavailable');
    assert.match(refused?.message ?? '', /etcdserver: mvcc: database space exceeded \(the store is out of disk space; nothing was written\)/);
    const shown = toStatus(failures[0]);
    assert.equal(shown.code, 503);
    assert.equal(shown.reason, 'ServiceUnavailable');
    assert.match(shown.message ?? '', /out of disk space/);

    // Raw gRPC: the code and text etcd sends, so other etcd clients (kube-apiserver, etcdctl) read it as etcd's.
    const raw = await ts.client.error(ts.client.put({ key: b('/registry/fault/raw'), value: Buffer.alloc(64 * 1024) }));
    assert.deepEqual(raw, { code: 8 /* RESOURCE_EXHAUSTED */, details: NO_SPACE });
    const alarms = await ts.etcdctl(['alarm', 'list']);
    assert.equal(alarms.code, 0, alarms.stderr);
    assert.match(alarms.stdout, /alarm:NOSPACE/);

    // A compare-and-swap refused for space is surely not applied: not reported "in doubt".
    const cas = await store.createIfAbsent('/registry/fault/cas', 'x'.repeat(64 * 1024)).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(cas instanceof TrustplaneError && !(cas instanceof StoreInDoubtError), `CAS failure: ${String(cas)}`);
    assert.match(cas.message, /database space exceeded/);

    // Reads keep working, and every acknowledged write is there.
    const read = await store.getPrefix('/registry/fault/');
    const got = new Map(read.kvs.map((kv) => [kv.key, kv.value.toString()]));
    for (const [k, v] of acked) assert.equal(got.get(k), v, `acknowledged ${k} readable while the disk is full`);

    // Space returns: writes succeed again without a restart, and the alarm clears.
    rmSync(filler);
    await waitFor('a write to succeed after space returned', () => store!.put('/registry/fault/after', 'back').then(() => true), 20_000, 100);
    assert.equal((await store.get('/registry/fault/after'))?.value.toString(), 'back');
    const cleared = await ts.etcdctl(['alarm', 'list']);
    assert.doesNotMatch(cleared.stdout, /NOSPACE/);

    // Nothing acknowledged was lost, also across a restart of the store on the same file.
    await store.close();
    store = undefined;
    const pki = ts.pki;
    await ts.close();
    ts = await startTestStore({ dir: mnt, pki });
    store = await open(ts);
    const again = new Map((await store.getPrefix('/registry/fault/')).kvs.map((kv) => [kv.key, kv.value.toString()]));
    for (const [k, v] of acked) assert.equal(again.get(k), v, `acknowledged ${k} survives a restart`);
    assert.equal(again.get('/registry/fault/after'), 'back');
  });
});
