// The SQLite history under the server: physical compaction removes exactly the superseded rows, and resumes after a stop.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { keyRange } from '../../../src/store/server/key-range.js';
import { MvccStore } from '../../../src/store/server/mvcc.js';
import { waitFor } from '../../../src/util/wait.js';
import { b, removeDir, startTestStore, str, tempDir } from './helpers.js';

const rows = (s: MvccStore) => s.db.prepare('SELECT count(*) FROM kv').pluck().get() as number;

/** Writes like a batch would: one revision per call. */
function write(s: MvccStore, fn: (rev: number) => void): void {
  s.db.transaction(() => {
    const rev = s.rev + 1;
    fn(rev);
    s.rev = rev;
    s.takeEvents();
    s.persistMeta();
  })();
}

describe('MvccStore compaction', () => {
  const dir = tempDir();
  after(() => removeDir(dir));

  it('keeps the newest version at or below the compact revision, drops older ones and old tombstones', () => {
    const s = new MvccStore(join(dir, 'a.db'), 'NORMAL');
    const putKey = (k: string, v: string) => write(s, (rev) => s.put(b(k), b(v), '0', rev, s.liveRow(b(k))));
    putKey('a', '1'); // rev 2
    putKey('a', '2'); // rev 3
    putKey('b', '1'); // rev 4
    write(s, (rev) => s.delete(s.liveRow(b('b'))!, rev)); // rev 5 (tombstone)
    putKey('a', '3'); // rev 6
    putKey('c', '1'); // rev 7
    write(s, (rev) => s.delete(s.liveRow(b('c'))!, rev)); // rev 8, tombstone stays when compacting at 8
    assert.equal(rows(s), 7);
    s.compactRev = 8;
    while (!s.compactStep(2));
    // a@6 (newest ≤ 8), c's tombstone at exactly 8; a@2, a@3, b@4, b's tombstone@5 and c@7 are gone.
    assert.equal(rows(s), 2);
    assert.equal(s.physicalCompactRev, 8);
    assert.deepEqual(s.range(keyRange(b('a'), b('z')), 8, 0, true).map((kv) => `${str(kv.key)}=${str(kv.value)}`), ['a=3']);
    assert.deepEqual(s.range(keyRange(b('a'), b('z')), null, 0, true).map((kv) => str(kv.key)), ['a']);
    s.close();
  });

  it('a compaction cut short by a stop resumes from its persisted progress', () => {
    const path = join(dir, 'b.db');
    let s = new MvccStore(path, 'FULL');
    // 30 keys written twice: 60 rows, of which 30 are superseded.
    for (let round = 0; round < 2; round++)
      for (let i = 0; i < 30; i++) write(s, (rev) => s.put(b(`k${i}`), b(String(round)), '0', rev, s.liveRow(b(`k${i}`))));
    s.compactRev = s.rev;
    s.db.transaction(() => s.persistMeta())();
    s.compactStep(10);
    const partial = rows(s);
    assert.ok(partial > 30 && partial < 60, `after one step: ${partial}`);
    s.close();
    s = new MvccStore(path, 'FULL');
    assert.equal(s.compactRev, 61);
    assert.ok(s.physicalCompactRev < 61);
    while (!s.compactStep(10));
    assert.equal(rows(s), 30);
    assert.equal(s.physicalCompactRev, 61);
    s.close();
  });
});

describe('automatic compaction', () => {
  it('compacts periodically, keeping the configured number of revisions', async () => {
    const t = await startTestStore({ compaction: { intervalMs: 50, retainRevisions: 5 } });
    try {
      for (let i = 0; i < 20; i++) await t.client.put({ key: b('auto'), value: b(String(i)) });
      const now = Number((await t.client.range({ key: b('auto') })).header.revision);
      await waitFor('automatic compaction', async () => {
        const e = await t.client.error(t.client.range({ key: b('auto'), revision: now - 10 })).catch(() => undefined);
        return e?.details === 'etcdserver: mvcc: required revision has been compacted';
      });
      const kept = await t.client.range({ key: b('auto'), revision: now - 5 });
      assert.equal(str(kept.kvs[0].value), '14');
    } finally {
      await t.close();
      removeDir(t.dir);
    }
  });
});
