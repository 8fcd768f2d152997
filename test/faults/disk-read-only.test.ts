// Fault: the embedded store's filesystem turns read-only under a write load (ext4 on a loop device, errors=remount-ro).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { toStatus } from '../../src/apiserver/status.js';
import { openStore, type Store } from '../../src/store/client.js';
import { StoreInDoubtError } from '../../src/store/errors.js';
import { TrustplaneError } from '../../src/util/errors.js';
import { b, startTestStore, tempDir, type TestStore } from '../store/server/helpers.js';

/*
 * `mount -o remount,ro` refuses ("mount point is busy") while the store holds its files open for writing, on tmpfs and
 * ext4 alike; what turns a running store's filesystem read-only is the kernel, after an I/O error on a filesystem
 * mounted errors=remount-ro. ext4's trigger_fs_error raises exactly that. Such a filesystem stays read-only until it
 * is unmounted and checked, so the store cannot come back by itself here: the test shows the refusal, reads, and that
 * every acknowledged write is still there after the check and a restart.
 */
describe('fault: the store disk turns read-only', { timeout: 90_000 }, () => {
  const work = tempDir('tp-fault-ro-');
  const image = join(work, 'ext4.img');
  const mnt = join(work, 'mnt');
  let mounted = false;
  let ts: TestStore | undefined;
  let store: Store | undefined;

  const mount = () => {
    execFileSync('mkdir', ['-p', mnt]);
    execFileSync('mount', ['-o', 'loop,errors=remount-ro', image, mnt]);
    mounted = true;
  };
  const unmount = () => {
    if (mounted) execFileSync('umount', [mnt]);
    mounted = false;
  };

  before(() => {
    execFileSync('truncate', ['-s', '32M', image]);
    execFileSync('mkfs.ext4', ['-q', image]);
    mount();
  });
  after(async () => {
    await store?.close();
    await ts?.close();
    if (mounted) execFileSync('umount', ['-l', mnt]);
    rmSync(work, { recursive: true, force: true });
  });

  const open = async (t: TestStore) =>
    openStore({ endpoints: [t.server.endpoint], tls: { ca: t.pki.ca.cert, cert: t.pki.client.cert, key: t.pki.client.key }, timeoutMs: 2000 });

  it('refuses writes naming the read-only disk, keeps serving reads, and loses nothing acknowledged', async (t) => {
    const device = execFileSync('findmnt', ['-n', '-o', 'SOURCE', mnt]).toString().trim().split('/').pop()!;
    const trigger = `/sys/fs/ext4/${device}/trigger_fs_error`;
    if (!existsSync(trigger)) {
      t.skip(`${trigger} is missing: this kernel cannot fail an ext4 filesystem on demand`);
      return;
    }
    ts = await startTestStore({ dir: mnt });
    store = await open(ts);

    const acked = new Map<string, string>();
    const failures: unknown[] = [];
    let n = 0;
    let failed = false;
    const writer = async () => {
      while (failures.length < 16 && n < 4000) {
        const key = `/registry/ro/${n++}`;
        try {
          await store!.put(key, `value of ${key}`);
          acked.set(key, `value of ${key}`);
        } catch (e) {
          failures.push(e);
        }
        // The fault strikes in the middle of the load.
        if (acked.size >= 200 && !failed) {
          failed = true;
          writeFileSync(trigger, '1');
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, writer));
    assert.ok(failed && acked.size >= 200);
    assert.ok(failures.length >= 16, 'writes failed once the filesystem was read-only');

    for (const e of failures) {
      assert.ok(e instanceof TrustplaneError && !(e instanceof StoreInDoubtError), String(e));
      assert.equal(e.reason, 'Unavailable');
      assert.match(e.message, /etcdserver: write failed: the store's disk is read-only \(.*\); nothing was applied/);
    }
    assert.equal(toStatus(failures[0]).code, 503);

    const raw = await ts.client.error(ts.client.put({ key: b('/registry/ro/raw'), value: b('x') }));
    assert.equal(raw.code, 14 /* UNAVAILABLE */);
    assert.equal(raw.details, `etcdserver: write failed: the store's disk is read-only (${mnt}); nothing was applied`);

    // A compare-and-swap is refused as not applied, not "in doubt".
    const cas = await store.createIfAbsent('/registry/ro/cas', 'x').then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(cas instanceof TrustplaneError && !(cas instanceof StoreInDoubtError), `CAS failure: ${String(cas)}`);

    const got = new Map((await store.getPrefix('/registry/ro/')).kvs.map((kv) => [kv.key, kv.value.toString()]));
    for (const [k, v] of acked) assert.equal(got.get(k), v, `acknowledged ${k} readable on the read-only disk`);

    // What an operator does: stop the store, check the filesystem, mount it again, start the store.
    await store.close();
    store = undefined;
    const pki = ts.pki;
    await ts.close();
    ts = undefined;
    unmount();
    try {
      execFileSync('e2fsck', ['-fy', image], { stdio: 'ignore' });
    } catch (e) {
      // 1: errors corrected, which is what a forced error leaves behind.
      if ((e as { status?: number }).status !== 1) throw e;
    }
    mount();
    ts = await startTestStore({ dir: mnt, pki });
    store = await open(ts);
    const again = new Map((await store.getPrefix('/registry/ro/')).kvs.map((kv) => [kv.key, kv.value.toString()]));
    for (const [k, v] of acked) assert.equal(again.get(k), v, `acknowledged ${k} survives the read-only fault`);
    await store.put('/registry/ro/after', 'back');
    assert.equal((await store.get('/registry/ro/after'))?.value.toString(), 'back');
  });
});
