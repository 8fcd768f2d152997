// KV semantics of the store server against etcd 3.4's: revisions, ranges, puts, deletes, txns, compaction, limits.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { b, prefixEnd, removeDir, startTestStore, str, type Msg, type TestStore } from './helpers.js';

describe('store server KV', () => {
  let t: TestStore;
  before(async () => {
    t = await startTestStore();
  });
  after(async () => {
    await t.close();
    removeDir(t.dir);
  });

  const rev = async () => Number((await t.client.range({ key: b('\0'), count_only: true })).header.revision);
  const put = (key: string, value: string, extra: Msg = {}) => t.client.put({ key: b(key), value: b(value), ...extra });
  const keysOf = (r: Msg) => r.kvs.map((kv: Msg) => str(kv.key));

  it('starts at revision 1 and fills every header', async () => {
    const r = await t.client.range({ key: b('nothing') });
    assert.equal(r.header.revision, '1');
    assert.notEqual(r.header.cluster_id, '0');
    assert.notEqual(r.header.member_id, '0');
    assert.ok(Number(r.header.raft_term) >= 1);
    assert.equal(r.count, '0');
    assert.deepEqual(r.kvs, []);
  });

  it('put assigns revisions, versions and keeps create_revision', async () => {
    const p1 = await put('a', '1');
    const r1 = Number(p1.header.revision);
    const p2 = await put('a', '2', { prev_kv: true });
    assert.equal(Number(p2.header.revision), r1 + 1);
    assert.equal(str(p2.prev_kv.value), '1');
    assert.equal(p2.prev_kv.mod_revision, String(r1));
    const g = await t.client.range({ key: b('a') });
    assert.equal(g.kvs.length, 1);
    assert.equal(str(g.kvs[0].value), '2');
    assert.equal(g.kvs[0].create_revision, String(r1));
    assert.equal(g.kvs[0].mod_revision, String(r1 + 1));
    assert.equal(g.kvs[0].version, '2');
    assert.equal(g.header.revision, String(r1 + 1));
    // A put without prev_kv returns none.
    assert.equal((await put('a', '3')).prev_kv, null);
  });

  it('ranges: prefix, from-key, all, limit with more and count, keys_only, count_only, end below key', async () => {
    for (const k of ['r/1', 'r/2', 'r/3', 'r/4', 's/1']) await put(k, `v-${k}`);
    const prefix = await t.client.range({ key: b('r/'), range_end: prefixEnd('r/') });
    assert.deepEqual(keysOf(prefix), ['r/1', 'r/2', 'r/3', 'r/4']);
    assert.equal(prefix.count, '4');
    const from = await t.client.range({ key: b('r/3'), range_end: Buffer.from([0]) });
    assert.deepEqual(keysOf(from), ['r/3', 'r/4', 's/1']);
    const all = await t.client.range({ key: Buffer.from([0]), range_end: Buffer.from([0]) });
    assert.ok(keysOf(all).includes('a') && keysOf(all).includes('s/1'));
    const limited = await t.client.range({ key: b('r/'), range_end: prefixEnd('r/'), limit: 2 });
    assert.deepEqual(keysOf(limited), ['r/1', 'r/2']);
    assert.equal(limited.more, true);
    assert.equal(limited.count, '4');
    const exact = await t.client.range({ key: b('r/'), range_end: prefixEnd('r/'), limit: 4 });
    assert.equal(exact.more, false);
    const keysOnly = await t.client.range({ key: b('r/'), range_end: prefixEnd('r/'), keys_only: true });
    assert.equal(keysOnly.kvs.length, 4);
    assert.ok(keysOnly.kvs.every((kv: Msg) => kv.value.length === 0));
    const countOnly = await t.client.range({ key: b('r/'), range_end: prefixEnd('r/'), count_only: true });
    assert.equal(countOnly.count, '4');
    assert.deepEqual(countOnly.kvs, []);
    const backwards = await t.client.range({ key: b('r/3'), range_end: b('r/1') });
    assert.deepEqual(backwards.kvs, []);
    assert.equal(backwards.count, '0');
  });

  it('ranges sort and filter like etcd (election-style queries)', async () => {
    for (const k of ['e/c', 'e/a', 'e/b']) await put(k, k);
    const end = prefixEnd('e/');
    const byCreate = await t.client.range({ key: b('e/'), range_end: end, sort_target: 'CREATE', sort_order: 'ASCEND', limit: 1 });
    assert.deepEqual(keysOf(byCreate), ['e/c']);
    assert.equal(byCreate.more, true);
    const byKeyDesc = await t.client.range({ key: b('e/'), range_end: end, sort_target: 'KEY', sort_order: 'DESCEND' });
    assert.deepEqual(keysOf(byKeyDesc), ['e/c', 'e/b', 'e/a']);
    // A target other than KEY sorts ascending even when no order is given.
    const byModNone = await t.client.range({ key: b('e/'), range_end: end, sort_target: 'MOD' });
    assert.deepEqual(keysOf(byModNone), ['e/c', 'e/a', 'e/b']);
    const byValueDesc = await t.client.range({ key: b('e/'), range_end: end, sort_target: 'VALUE', sort_order: 'DESCEND' });
    assert.deepEqual(keysOf(byValueDesc), ['e/c', 'e/b', 'e/a']);
    const first = Number(byCreate.kvs[0].create_revision);
    const maxCreate = await t.client.range({ key: b('e/'), range_end: end, max_create_revision: first });
    assert.deepEqual(keysOf(maxCreate), ['e/c']);
    const minMod = await t.client.range({ key: b('e/'), range_end: end, min_mod_revision: first + 1 });
    assert.deepEqual(keysOf(minMod), ['e/a', 'e/b']);
    // count is the number of keys in the range, before filters.
    assert.equal(minMod.count, '3');
    const maxMod = await t.client.range({ key: b('e/'), range_end: end, max_mod_revision: first + 1, min_create_revision: first + 1 });
    assert.deepEqual(keysOf(maxMod), ['e/a']);
  });

  it('historic reads see the store as of a revision; future revisions are refused', async () => {
    const r1 = Number((await put('h', 'one')).header.revision);
    await put('h', 'two');
    await t.client.deleteRange({ key: b('h') });
    await put('h2', 'x');
    const at1 = await t.client.range({ key: b('h'), revision: r1 });
    assert.equal(str(at1.kvs[0].value), 'one');
    const atDel = await t.client.range({ key: b('h'), revision: r1 + 2 });
    assert.deepEqual(atDel.kvs, []);
    const histPrefix = await t.client.range({ key: b('h'), range_end: b('h3'), revision: r1 + 1, count_only: true });
    assert.equal(histPrefix.count, '1');
    const histLimit = await t.client.range({ key: b('h'), range_end: b('h3'), revision: r1 + 3, limit: 1 });
    assert.deepEqual(keysOf(histLimit), ['h2']);
    const now = await rev();
    assert.equal(histLimit.header.revision, String(now));
    const err = await t.client.error(t.client.range({ key: b('h'), revision: now + 1 }));
    assert.equal(err.code, status.OUT_OF_RANGE);
    assert.equal(err.details, 'etcdserver: mvcc: required revision is a future revision');
  });

  it('put options: ignore_value, ignore_lease, unknown lease, bad combinations', async () => {
    await put('iv', 'keep');
    const p = await t.client.put({ key: b('iv'), ignore_value: true, prev_kv: true });
    assert.equal(str(p.prev_kv.value), 'keep');
    assert.equal(str((await t.client.range({ key: b('iv') })).kvs[0].value), 'keep');
    let e = await t.client.error(t.client.put({ key: b('missing'), ignore_value: true }));
    assert.deepEqual(e, { code: status.INVALID_ARGUMENT, details: 'etcdserver: key not found' });
    e = await t.client.error(t.client.put({ key: b('iv'), value: b('x'), ignore_value: true }));
    assert.deepEqual(e, { code: status.INVALID_ARGUMENT, details: 'etcdserver: value is provided' });
    e = await t.client.error(t.client.put({ key: b('iv'), lease: '5', ignore_lease: true }));
    assert.deepEqual(e, { code: status.INVALID_ARGUMENT, details: 'etcdserver: lease is provided' });
    e = await t.client.error(t.client.put({ key: b('iv'), value: b('x'), lease: '123456789' }));
    assert.deepEqual(e, { code: status.NOT_FOUND, details: 'etcdserver: requested lease not found' });
    const lease = await t.client.call('Lease', 'LeaseGrant', { TTL: 60 });
    await t.client.put({ key: b('il'), value: b('1'), lease: lease.ID });
    await t.client.put({ key: b('il'), value: b('2'), ignore_lease: true });
    assert.equal((await t.client.range({ key: b('il') })).kvs[0].lease, lease.ID);
  });

  it('empty keys are refused everywhere', async () => {
    const want = { code: status.INVALID_ARGUMENT, details: 'etcdserver: key is not provided' };
    assert.deepEqual(await t.client.error(t.client.range({ key: b('') })), want);
    assert.deepEqual(await t.client.error(t.client.put({ key: b(''), value: b('x') })), want);
    assert.deepEqual(await t.client.error(t.client.deleteRange({ key: b('') })), want);
    assert.deepEqual(await t.client.error(t.client.txn({ compare: [{ key: b(''), target: 'VERSION', result: 'EQUAL' }] })), want);
  });

  it('delete range: counts, prev_kvs, one revision, nothing deleted changes nothing', async () => {
    for (const k of ['d/1', 'd/2', 'd/3']) await put(k, k);
    const before = await rev();
    const none = await t.client.deleteRange({ key: b('d/none') });
    assert.equal(none.deleted, '0');
    assert.equal(none.header.revision, String(before));
    const d = await t.client.deleteRange({ key: b('d/'), range_end: prefixEnd('d/'), prev_kv: true });
    assert.equal(d.deleted, '3');
    assert.equal(d.header.revision, String(before + 1));
    assert.deepEqual(d.prev_kvs.map((kv: Msg) => str(kv.value)), ['d/1', 'd/2', 'd/3']);
    assert.equal((await t.client.range({ key: b('d/'), range_end: prefixEnd('d/'), count_only: true })).count, '0');
    // A re-created key starts again at version 1.
    const again = await put('d/1', 'again');
    const g = await t.client.range({ key: b('d/1') });
    assert.equal(g.kvs[0].version, '1');
    assert.equal(g.kvs[0].create_revision, again.header.revision);
  });

  it('txn: compares on every target and result, branches, one revision for all writes', async () => {
    const p = await put('t/a', 'va');
    const ra = Number(p.header.revision);
    const cmp = (target: string, result: string, field: string, v: unknown, key = 't/a') => ({ key: b(key), target, result, [field]: v });
    const cases: Array<[Msg, boolean]> = [
      [cmp('VALUE', 'EQUAL', 'value', b('va')), true],
      [cmp('VALUE', 'NOT_EQUAL', 'value', b('va')), false],
      [cmp('VALUE', 'GREATER', 'value', b('v')), true],
      [cmp('VALUE', 'LESS', 'value', b('vb')), true],
      [cmp('VERSION', 'EQUAL', 'version', 1), true],
      [cmp('VERSION', 'GREATER', 'version', 1), false],
      [cmp('CREATE', 'EQUAL', 'create_revision', ra), true],
      [cmp('MOD', 'LESS', 'mod_revision', ra + 1), true],
      [cmp('MOD', 'GREATER', 'mod_revision', ra), false],
      [cmp('LEASE', 'EQUAL', 'lease', 0), true],
      // A missing key has version 0 and create revision 0, and no value to compare.
      [cmp('VERSION', 'EQUAL', 'version', 0, 't/missing'), true],
      [cmp('CREATE', 'LESS', 'create_revision', 1, 't/missing'), true],
      [cmp('VALUE', 'EQUAL', 'value', b(''), 't/missing'), false],
    ];
    for (const [c, want] of cases) {
      const r = await t.client.txn({ compare: [c] });
      assert.equal(r.succeeded, want, `compare ${JSON.stringify({ ...c, key: undefined })}`);
    }
    // A compare over a range holds only if it holds for every key.
    await put('t/b', 'vb');
    const overRange = await t.client.txn({ compare: [{ key: b('t/'), range_end: prefixEnd('t/'), target: 'VERSION', result: 'EQUAL', version: 1 }] });
    assert.equal(overRange.succeeded, true);
    const notAll = await t.client.txn({ compare: [{ key: b('t/'), range_end: prefixEnd('t/'), target: 'VALUE', result: 'EQUAL', value: b('va') }] });
    assert.equal(notAll.succeeded, false);

    const before = await rev();
    const r = await t.client.txn({
      compare: [cmp('VALUE', 'EQUAL', 'value', b('va'))],
      success: [
        { request_put: { key: b('t/x'), value: b('1') } },
        { request_put: { key: b('t/y'), value: b('2') } },
        { request_range: { key: b('t/x') } },
        { request_delete_range: { key: b('t/b') } },
      ],
      failure: [{ request_put: { key: b('t/failed'), value: b('1') } }],
    });
    assert.equal(r.succeeded, true);
    assert.equal(r.header.revision, String(before + 1));
    assert.equal(r.responses.length, 4);
    assert.equal(r.responses[0].response_put.header.revision, String(before + 1));
    // A range after a put in the same txn sees it.
    assert.equal(str(r.responses[2].response_range.kvs[0].value), '1');
    assert.equal(r.responses[3].response_delete_range.deleted, '1');
    const x = await t.client.range({ key: b('t/x') });
    const y = await t.client.range({ key: b('t/y') });
    assert.equal(x.kvs[0].mod_revision, String(before + 1));
    assert.equal(y.kvs[0].mod_revision, String(before + 1));
    assert.equal((await t.client.range({ key: b('t/failed') })).kvs.length, 0);

    const failed = await t.client.txn({
      compare: [cmp('VALUE', 'EQUAL', 'value', b('nope'))],
      success: [{ request_put: { key: b('t/never'), value: b('1') } }],
      failure: [{ request_range: { key: b('t/a') } }],
    });
    assert.equal(failed.succeeded, false);
    assert.equal(str(failed.responses[0].response_range.kvs[0].value), 'va');
    // A txn that only reads does not move the revision.
    assert.equal(failed.header.revision, String(before + 1));
    assert.equal(await rev(), before + 1);
  });

  it('txn: nested txns take their own branches; a put-only-if-absent works as a lock', async () => {
    const r = await t.client.txn({
      compare: [{ key: b('n/lock'), target: 'CREATE', result: 'EQUAL', create_revision: 0 }],
      success: [
        { request_put: { key: b('n/lock'), value: b('me') } },
        {
          request_txn: {
            compare: [{ key: b('n/other'), target: 'VERSION', result: 'GREATER', version: 0 }],
            success: [{ request_put: { key: b('n/then'), value: b('1') } }],
            failure: [{ request_put: { key: b('n/else'), value: b('1') } }],
          },
        },
      ],
    });
    assert.equal(r.succeeded, true);
    assert.equal(r.responses[1].response_txn.succeeded, false);
    assert.equal((await t.client.range({ key: b('n/else') })).kvs.length, 1);
    assert.equal((await t.client.range({ key: b('n/then') })).kvs.length, 0);
    const second = await t.client.txn({
      compare: [{ key: b('n/lock'), target: 'CREATE', result: 'EQUAL', create_revision: 0 }],
      success: [{ request_put: { key: b('n/lock'), value: b('you') } }],
    });
    assert.equal(second.succeeded, false);
    assert.equal(str((await t.client.range({ key: b('n/lock') })).kvs[0].value), 'me');
  });

  it('txn: the same key written twice, too many ops, empty ops and bad lease are refused', async () => {
    const dup = { code: status.INVALID_ARGUMENT, details: 'etcdserver: duplicate key given in txn request' };
    const putOp = (k: string) => ({ request_put: { key: b(k), value: b('v') } });
    assert.deepEqual(await t.client.error(t.client.txn({ success: [putOp('k'), putOp('k')] })), dup);
    assert.deepEqual(await t.client.error(t.client.txn({ success: [{ request_delete_range: { key: b('k'), range_end: b('l') } }, putOp('k1')] })), dup);
    assert.deepEqual(await t.client.error(t.client.txn({ success: [putOp('k'), { request_txn: { success: [putOp('k')] } }] })), dup);
    // Then and else of one nested txn may write the same key.
    await t.client.txn({ success: [{ request_txn: { success: [putOp('k2')], failure: [putOp('k2')] } }] });
    const many = Array.from({ length: 129 }, (_, i) => putOp(`m${i}`));
    assert.deepEqual(await t.client.error(t.client.txn({ success: many })), {
      code: status.INVALID_ARGUMENT,
      details: 'etcdserver: too many operations in txn request',
    });
    assert.deepEqual(await t.client.error(t.client.txn({ success: [{}] })), { code: status.INVALID_ARGUMENT, details: 'etcdserver: key not found' });
    const before = await rev();
    const e = await t.client.error(t.client.txn({ success: [putOp('ok'), { request_put: { key: b('bad'), value: b('v'), lease: '999' } }] }));
    assert.deepEqual(e, { code: status.NOT_FOUND, details: 'etcdserver: requested lease not found' });
    // A refused txn writes nothing at all.
    assert.equal(await rev(), before);
    assert.equal((await t.client.range({ key: b('ok') })).kvs.length, 0);
  });

  it('compaction: history below is gone, reads at and above it still work, bounds are checked', async () => {
    const r1 = Number((await put('c/k', 'v1')).header.revision);
    const r2 = Number((await put('c/k', 'v2')).header.revision);
    const r3 = Number((await put('c/k', 'v3')).header.revision);
    await t.client.deleteRange({ key: b('c/k') });
    await t.client.compact({ revision: r2, physical: true });
    const compacted = { code: status.OUT_OF_RANGE, details: 'etcdserver: mvcc: required revision has been compacted' };
    assert.deepEqual(await t.client.error(t.client.range({ key: b('c/k'), revision: r1 })), compacted);
    assert.equal(str((await t.client.range({ key: b('c/k'), revision: r2 })).kvs[0].value), 'v2');
    assert.equal(str((await t.client.range({ key: b('c/k'), revision: r3 })).kvs[0].value), 'v3');
    assert.deepEqual(await t.client.error(t.client.compact({ revision: r2 })), compacted);
    assert.deepEqual(await t.client.error(t.client.compact({ revision: r1 })), compacted);
    const now = await rev();
    assert.deepEqual(await t.client.error(t.client.compact({ revision: now + 10 })), {
      code: status.OUT_OF_RANGE,
      details: 'etcdserver: mvcc: required revision is a future revision',
    });
    const c = await t.client.compact({ revision: now });
    assert.equal(c.header.revision, String(now));
    // A txn range at a compacted revision fails the whole txn.
    assert.deepEqual(await t.client.error(t.client.txn({ success: [{ request_range: { key: b('c/k'), revision: r3 } }] })), compacted);
  });

  it('requests over 1.5 MiB are refused like etcd; large keys and values under it are stored', async () => {
    const big = Buffer.alloc(1024 * 1024, 'k');
    await t.client.put({ key: big, value: b('v') });
    assert.equal((await t.client.range({ key: big })).kvs[0].key.length, big.length);
    const tooLarge = await t.client.error(t.client.put({ key: b('big'), value: Buffer.alloc(1.6 * 1024 * 1024) }));
    assert.deepEqual(tooLarge, { code: status.INVALID_ARGUMENT, details: 'etcdserver: request is too large' });
    const huge = await t.client.error(t.client.put({ key: b('big'), value: Buffer.alloc(2.5 * 1024 * 1024) }));
    assert.equal(huge.code, status.RESOURCE_EXHAUSTED);
    const nearLimit = Buffer.alloc(1.5 * 1024 * 1024 - 64);
    await t.client.put({ key: b('near'), value: nearLimit });
    assert.equal((await t.client.range({ key: b('near') })).kvs[0].value.length, nearLimit.length);
  });

  it('malformed protobuf gets a gRPC error and the server keeps serving; unknown RPCs are UNIMPLEMENTED', async () => {
    const garbage = Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]);
    await assert.rejects(t.client.rawUnary('/etcdserverpb.KV/Put', garbage), (e: { code: number }) => e.code === status.INTERNAL);
    await assert.rejects(t.client.rawUnary('/etcdserverpb.KV/Range', Buffer.from([0xff])), (e: { code: number }) => typeof e.code === 'number');
    assert.equal((await put('after-garbage', 'ok')).header.revision.length > 0, true);
    const unimpl = await t.client.error(t.client.call('Maintenance', 'Hash', {}));
    assert.equal(unimpl.code, status.UNIMPLEMENTED);
    const auth = await t.client.error(t.client.call('Auth', 'AuthEnable', {}));
    assert.equal(auth.code, status.UNIMPLEMENTED);
    const add = await t.client.error(t.client.call('Cluster', 'MemberAdd', { peerURLs: ['https://127.0.0.1:1'] }));
    assert.equal(add.code, status.UNIMPLEMENTED);
  });

  it('concurrent writes each get their own revision, in one or more batches', async () => {
    const before = await rev();
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => put(`cc/${i}`, `${i}`)));
    const revs = results.map((r) => Number(r.header.revision)).sort((x, y) => x - y);
    assert.deepEqual(revs, Array.from({ length: 200 }, (_, i) => before + 1 + i));
    assert.equal(await rev(), before + 200);
  });

  it('Status and MemberList describe one member', async () => {
    const s = await t.client.call('Maintenance', 'Status', {});
    assert.equal(s.version, '3.4.23');
    assert.equal(s.leader, s.header.member_id);
    assert.ok(Number(s.dbSize) > 0);
    assert.ok(Number(s.raftIndex) > 0);
    assert.equal(s.raftTerm, s.header.raft_term);
    const m = await t.client.call('Cluster', 'MemberList', {});
    assert.equal(m.members.length, 1);
    assert.equal(m.members[0].ID, s.header.member_id);
    assert.deepEqual(m.members[0].clientURLs, [t.server.endpoint]);
    const alarms = await t.client.call('Maintenance', 'Alarm', { action: 'GET' });
    assert.deepEqual(alarms.alarms, []);
    await t.client.call('Maintenance', 'Defragment', {});
  });
});
