// Watch semantics of the store server: live and historic events, filters, cancel, progress, compaction, ordering.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { b, prefixEnd, removeDir, startTestStore, str, type Msg, type Stream, type TestStore } from './helpers.js';

describe('store server Watch', () => {
  let t: TestStore;
  before(async () => {
    t = await startTestStore({}, { leaseCheckMs: 20, progressNotifyMs: 300 });
  });
  after(async () => {
    await t.close();
    removeDir(t.dir);
  });

  const put = (key: string, value: string) => t.client.put({ key: b(key), value: b(value) });
  const create = async (s: Stream, req: Msg) => {
    s.send({ create_request: req });
    const created = await s.next();
    assert.equal(created.created, true);
    return created;
  };
  /** Events until `n` have arrived, checking nothing else is mixed in. */
  const events = async (s: Stream, n: number, timeoutMs = 5000) => {
    const out: Msg[] = [];
    while (out.length < n) {
      const r = await s.next(timeoutMs);
      out.push(...r.events.map((e: Msg) => ({ ...e, watch_id: r.watch_id })));
    }
    return out;
  };

  it('delivers puts and deletes of one key with prev_kv, starting after the current revision', async () => {
    const s = t.client.watch();
    await put('w/a', 'old');
    const created = await create(s, { key: b('w/a'), prev_kv: true });
    assert.equal(created.watch_id, '0');
    await put('w/a', 'new');
    await put('w/other', 'x');
    await t.client.deleteRange({ key: b('w/a') });
    const evs = await events(s, 2);
    assert.equal(evs[0].type, 'PUT');
    assert.equal(str(evs[0].kv.value), 'new');
    assert.equal(str(evs[0].prev_kv.value), 'old');
    assert.equal(evs[1].type, 'DELETE');
    assert.equal(str(evs[1].kv.key), 'w/a');
    assert.equal(evs[1].kv.version, '0');
    assert.equal(str(evs[1].prev_kv.value), 'new');
    assert.ok(await s.quietFor(100));
    s.close();
  });

  it('replays history from start_revision in order, then continues live, with no gaps or repeats', async () => {
    const first = Number((await put('h/1', 'a')).header.revision);
    await put('h/2', 'b');
    await put('h/1', 'c');
    await t.client.deleteRange({ key: b('h/2') });
    const s = t.client.watch();
    await create(s, { key: b('h/'), range_end: prefixEnd('h/'), start_revision: first });
    const replay = await events(s, 4);
    assert.deepEqual(
      replay.map((e) => `${e.type} ${str(e.kv.key)} ${e.kv.mod_revision}`),
      [`PUT h/1 ${first}`, `PUT h/2 ${first + 1}`, `PUT h/1 ${first + 2}`, `DELETE h/2 ${first + 3}`],
    );
    await put('h/3', 'live');
    const live = await events(s, 1);
    assert.equal(str(live[0].kv.key), 'h/3');
    assert.equal(live[0].kv.mod_revision, String(first + 4));
    s.close();
  });

  it('filters NOPUT and NODELETE, watches from a key on ("\\0" range end), and groups a txn into one response', async () => {
    const s = t.client.watch();
    await create(s, { key: b('f/'), range_end: prefixEnd('f/'), filters: ['NOPUT'] });
    await create(s, { key: b('f/'), range_end: prefixEnd('f/'), filters: ['NODELETE'] });
    await create(s, { key: b('f/m'), range_end: Buffer.from([0]) });
    await t.client.txn({ success: [{ request_put: { key: b('f/a'), value: b('1') } }, { request_put: { key: b('f/z'), value: b('2') } }] });
    await t.client.deleteRange({ key: b('f/a') });
    const got = new Map<string, Msg[]>();
    for (let i = 0; i < 3; i++) {
      const r = await s.next();
      got.set(r.watch_id, [...(got.get(r.watch_id) ?? []), r]);
    }
    assert.deepEqual(got.get('0')!.flatMap((r) => r.events.map((e: Msg) => `${e.type} ${str(e.kv.key)}`)), ['DELETE f/a']);
    const putsOnly = got.get('1')!;
    assert.equal(putsOnly.length, 1, 'both puts of the txn in one response');
    assert.deepEqual(putsOnly[0].events.map((e: Msg) => str(e.kv.key)), ['f/a', 'f/z']);
    assert.deepEqual(got.get('2')!.flatMap((r) => r.events.map((e: Msg) => str(e.kv.key))), ['f/z']);
    assert.ok(await s.quietFor(100));
    s.close();
  });

  it('cancels by ID (0 included), answers unknown IDs with nothing, and refuses empty ranges and duplicate IDs', async () => {
    const s = t.client.watch();
    const w0 = await create(s, { key: b('c/a') });
    const w1 = await create(s, { key: b('c/b') });
    assert.deepEqual([w0.watch_id, w1.watch_id], ['0', '1']);
    s.send({ cancel_request: { watch_id: 0 } });
    const canceled = await s.next();
    assert.equal(canceled.canceled, true);
    assert.equal(canceled.watch_id, '0');
    s.send({ cancel_request: { watch_id: 42 } });
    assert.ok(await s.quietFor(100));
    await put('c/a', 'x');
    await put('c/b', 'y');
    const r = await s.next();
    assert.equal(r.watch_id, '1');
    assert.equal(str(r.events[0].kv.key), 'c/b');
    s.send({ create_request: { key: b('c/z'), range_end: b('c/a') } });
    const empty = await s.next();
    assert.equal(empty.created, true);
    assert.equal(empty.canceled, true);
    assert.equal(empty.watch_id, '-1');
    assert.equal(empty.cancel_reason, 'mvcc: watcher range is empty');
    const chosen = await create(s, { key: b('c/q'), watch_id: 7 });
    assert.equal(chosen.watch_id, '7');
    s.send({ create_request: { key: b('c/q'), watch_id: 7 } });
    const dup = await s.next();
    assert.equal(dup.canceled, true);
    assert.equal(dup.cancel_reason, 'mvcc: duplicate watch ID provided on the WatchStream');
    s.close();
  });

  it('answers progress requests and sends progress notifications when quiet', async () => {
    const s = t.client.watch();
    await create(s, { key: b('p/k'), progress_notify: true });
    s.send({ progress_request: {} });
    const progress = await s.next();
    assert.equal(progress.watch_id, '-1');
    assert.deepEqual(progress.events, []);
    const current = (await t.client.range({ key: b('p/k') })).header.revision;
    assert.equal(progress.header.revision, current);
    const notify = await s.next(3000);
    assert.equal(notify.watch_id, '0');
    assert.deepEqual(notify.events, []);
    assert.equal(notify.header.revision, current);
    s.close();
  });

  it('a watch from a compacted revision gets compact_revision and is canceled', async () => {
    const r1 = Number((await put('k/1', 'a')).header.revision);
    await put('k/1', 'b');
    const r3 = Number((await put('k/1', 'c')).header.revision);
    await t.client.compact({ revision: r3 });
    const s = t.client.watch();
    await create(s, { key: b('k/1'), start_revision: r1 });
    const r = await s.next();
    assert.equal(r.canceled, true);
    assert.equal(r.compact_revision, String(r3));
    // From the compaction revision itself, history is still there.
    await create(s, { key: b('k/1'), start_revision: r3 });
    const ev = await events(s, 1);
    assert.equal(str(ev[0].kv.value), 'c');
    s.close();
  });

  it('many concurrent writers: every revision arrives once, in order, on several watchers', async () => {
    const streams = [t.client.watch(), t.client.watch()];
    const start = Number((await t.client.range({ key: b('x') })).header.revision) + 1;
    for (const s of streams) await create(s, { key: b('o/'), range_end: prefixEnd('o/') });
    const late = t.client.watch();
    const n = 300;
    const writes = Promise.all(Array.from({ length: n }, (_, i) => put(`o/${i % 17}`, `${i}`)));
    // A watcher that starts from history while writes go on must join live delivery without a gap.
    await create(late, { key: b('o/'), range_end: prefixEnd('o/'), start_revision: start });
    await writes;
    for (const s of [...streams, late]) {
      const evs = await events(s, n);
      const revs = evs.map((e) => Number(e.kv.mod_revision));
      assert.deepEqual(revs, Array.from({ length: n }, (_, i) => start + i));
      s.close();
    }
  });

  it('a long history replays in full, in chunks', async () => {
    const start = Number((await t.client.range({ key: b('x') })).header.revision) + 1;
    const n = 1500;
    for (let i = 0; i < n; i += 250) await Promise.all(Array.from({ length: 250 }, (_, j) => put(`l/${(i + j) % 50}`, 'v'.repeat(100))));
    const s = t.client.watch();
    await create(s, { key: b('l/'), range_end: prefixEnd('l/'), start_revision: start, prev_kv: true });
    const evs = await events(s, n, 10000);
    assert.equal(evs.length, n);
    assert.deepEqual(
      evs.map((e) => Number(e.kv.mod_revision)),
      Array.from({ length: n }, (_, i) => start + i),
    );
    assert.ok(evs.slice(50).every((e) => e.prev_kv && e.prev_kv.key.length > 0));
    s.close();
  });

  it('a burst larger than the stream buffers arrives complete and in order (slow-consumer path)', async () => {
    const s = t.client.watch();
    await create(s, { key: b('big/'), range_end: prefixEnd('big/') });
    const start = Number((await t.client.range({ key: b('x') })).header.revision) + 1;
    const n = 400;
    const value = Buffer.alloc(48 * 1024, 'v');
    await Promise.all(Array.from({ length: n }, (_, i) => t.client.put({ key: b(`big/${i % 7}`), value })));
    const evs = await events(s, n, 15000);
    assert.deepEqual(
      evs.map((e) => Number(e.kv.mod_revision)),
      Array.from({ length: n }, (_, i) => start + i),
    );
    s.close();
  });

  it('half-closing the stream ends it cleanly', async () => {
    const s = t.client.watch();
    await create(s, { key: b('e/k') });
    s.end();
    const st = await s.ended;
    assert.equal((st as { code: number }).code, 0);
  });
});
