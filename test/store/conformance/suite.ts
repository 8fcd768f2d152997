// The one etcd v3 conformance suite: the same cases, the same expected answers, for real etcd and for trustplane's embedded store.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../../../src/util/wait.js';
import { rawClient, type Msg, type RawEtcd, type Tls, type WatchStream } from './raw.js';

export interface StoreUnderTest {
  endpoints: string[];
  tls: Tls;
  stop(): Promise<void>;
}

const b = (s: string) => Buffer.from(s);
/** The first key after every key with this prefix (etcd's range_end for a prefix). */
function prefixEnd(p: string): Buffer {
  const buf = Buffer.from(p);
  for (let i = buf.length - 1; i >= 0; i--) {
    if (buf[i] < 0xff) {
      const out = buf.subarray(0, i + 1);
      out[i]++;
      return out;
    }
  }
  return Buffer.from([0]);
}

/** Revisions are compared relative to a starting revision: each store counts from its own history. */
class Rel {
  constructor(readonly base: bigint) {}
  static async now(raw: RawEtcd): Promise<Rel> {
    const r = await raw.range({ key: b('\0conformance-probe') });
    return new Rel(BigInt(r.header.revision));
  }
  /** A revision as a delta from the base; 0 stays 0 ("none", as in a delete event's create_revision). */
  of(rev: string): number {
    return rev === '0' ? 0 : Number(BigInt(rev) - this.base);
  }
  /** The absolute revision `delta` after the base, as the wire carries it. */
  abs(delta: number): string {
    return String(this.base + BigInt(delta));
  }
  kv(kv: Msg | null | undefined) {
    if (!kv) return null;
    return {
      key: kv.key.toString(),
      value: kv.value.toString(),
      create: this.of(kv.create_revision),
      mod: this.of(kv.mod_revision),
      version: Number(kv.version),
      lease: kv.lease as string,
    };
  }
  event(ev: Msg) {
    return { type: ev.type as string, kv: this.kv(ev.kv), prev: this.kv(ev.prev_kv) };
  }
}

const keys = (r: Msg) => (r.kvs as Msg[]).map((kv) => kv.key.toString());
const events = (rs: Msg[]) => rs.flatMap((r) => r.events as Msg[]);

/** Read watch responses until `n` events have arrived. */
async function collectEvents(w: WatchStream, n: number, watchId?: string): Promise<Msg[]> {
  const got: Msg[] = [];
  const rs = await w.until((r) => {
    if (watchId === undefined || r.watch_id === watchId) got.push(...(r.events as Msg[]));
    return got.length >= n;
  }, 10_000);
  return rs.filter((r) => watchId === undefined || r.watch_id === watchId);
}

async function createWatch(w: WatchStream, req: Msg): Promise<Msg> {
  w.send({ create_request: req });
  const r = await w.next();
  assert.equal(r.created, true, `expected a created response, got ${JSON.stringify(r)}`);
  return r;
}

// gRPC status codes the cases expect.
const INVALID_ARGUMENT = 3;
const NOT_FOUND = 5;
const RESOURCE_EXHAUSTED = 8;
const FAILED_PRECONDITION = 9;
const OUT_OF_RANGE = 11;

export function conformanceSuite(name: string, start: () => Promise<StoreUnderTest>): void {
  describe(`etcd v3 conformance: ${name}`, { concurrency: 1 }, () => {
    let store: StoreUnderTest;
    let raw: RawEtcd;
    // Every case writes under its own prefix, so the cases share one store without seeing each other's keys.
    const run = randomBytes(4).toString('hex');
    const ns = (c: string) => `/conformance/${run}/${c}/`;

    before(async () => {
      store = await start();
      raw = rawClient(store.endpoints[0], store.tls);
    });
    after(async () => {
      raw?.close();
      await store?.stop();
    });

    test('put: revisions, version, prev_kv, ignore_value; range at a past revision', async () => {
      const k = ns('put') + 'k';
      const rel = await Rel.now(raw);
      const p1 = await raw.put({ key: b(k), value: b('v1') });
      assert.equal(rel.of(p1.header.revision), 1);
      assert.equal(p1.prev_kv, null);

      const g1 = await raw.range({ key: b(k) });
      assert.deepEqual({ count: g1.count, more: g1.more, rev: rel.of(g1.header.revision) }, { count: '1', more: false, rev: 1 });
      assert.deepEqual(rel.kv(g1.kvs[0]), { key: k, value: 'v1', create: 1, mod: 1, version: 1, lease: '0' });

      const p2 = await raw.put({ key: b(k), value: b('v2'), prev_kv: true });
      assert.equal(rel.of(p2.header.revision), 2);
      assert.deepEqual(rel.kv(p2.prev_kv), { key: k, value: 'v1', create: 1, mod: 1, version: 1, lease: '0' });

      const p3 = await raw.put({ key: b(k), ignore_value: true, prev_kv: true });
      assert.equal(rel.of(p3.header.revision), 3);
      const g3 = await raw.range({ key: b(k) });
      assert.deepEqual(rel.kv(g3.kvs[0]), { key: k, value: 'v2', create: 1, mod: 3, version: 3, lease: '0' });

      const old = await raw.range({ key: b(k), revision: rel.abs(1) });
      assert.deepEqual(rel.kv(old.kvs[0]), { key: k, value: 'v1', create: 1, mod: 1, version: 1, lease: '0' });
      assert.equal(rel.of(old.header.revision), 3, 'the header carries the current revision, not the one read');

      const missing = await raw.range({ key: b(ns('put') + 'missing') });
      assert.deepEqual({ kvs: missing.kvs, count: missing.count, more: missing.more }, { kvs: [], count: '0', more: false });

      const empty = await raw.put({ key: b(ns('put') + 'empty'), value: Buffer.alloc(0) });
      assert.equal(rel.of(empty.header.revision), 4);
      const ge = await raw.range({ key: b(ns('put') + 'empty') });
      assert.deepEqual(rel.kv(ge.kvs[0]), { key: ns('put') + 'empty', value: '', create: 4, mod: 4, version: 1, lease: '0' });
    });

    test('range: range_end, limit and more, count, keys_only, count_only, revision filters', async () => {
      const p = ns('range');
      const rel = await Rel.now(raw);
      for (const c of ['a', 'b', 'c', 'd', 'e']) await raw.put({ key: b(p + c), value: b('v' + c) });
      const all = await raw.range({ key: b(p), range_end: prefixEnd(p) });
      assert.deepEqual(keys(all), ['a', 'b', 'c', 'd', 'e'].map((c) => p + c));
      assert.deepEqual({ count: all.count, more: all.more }, { count: '5', more: false });
      assert.deepEqual(
        (all.kvs as Msg[]).map((kv) => rel.kv(kv)),
        ['a', 'b', 'c', 'd', 'e'].map((c, i) => ({ key: p + c, value: 'v' + c, create: i + 1, mod: i + 1, version: 1, lease: '0' })),
      );

      const lim = await raw.range({ key: b(p), range_end: prefixEnd(p), limit: 2 });
      assert.deepEqual({ keys: keys(lim), count: lim.count, more: lim.more }, { keys: [p + 'a', p + 'b'], count: '5', more: true });
      const limAll = await raw.range({ key: b(p), range_end: prefixEnd(p), limit: 5 });
      assert.deepEqual({ n: limAll.kvs.length, more: limAll.more }, { n: 5, more: false });
      const limOver = await raw.range({ key: b(p), range_end: prefixEnd(p), limit: 50 });
      assert.deepEqual({ n: limOver.kvs.length, more: limOver.more }, { n: 5, more: false });

      const half = await raw.range({ key: b(p + 'b'), range_end: b(p + 'd') });
      assert.deepEqual(keys(half), [p + 'b', p + 'c'], 'range_end is exclusive');

      const ko = await raw.range({ key: b(p), range_end: prefixEnd(p), keys_only: true });
      assert.deepEqual(
        (ko.kvs as Msg[]).map((kv) => rel.kv(kv)),
        ['a', 'b', 'c', 'd', 'e'].map((c, i) => ({ key: p + c, value: '', create: i + 1, mod: i + 1, version: 1, lease: '0' })),
      );

      const co = await raw.range({ key: b(p), range_end: prefixEnd(p), count_only: true });
      assert.deepEqual({ kvs: co.kvs, count: co.count, more: co.more }, { kvs: [], count: '5', more: false });
      const coLim = await raw.range({ key: b(p), range_end: prefixEnd(p), count_only: true, limit: 2 });
      assert.deepEqual({ kvs: coLim.kvs, count: coLim.count }, { kvs: [], count: '5' });

      const minMod = await raw.range({ key: b(p), range_end: prefixEnd(p), min_mod_revision: rel.abs(3) });
      assert.deepEqual(keys(minMod), [p + 'c', p + 'd', p + 'e']);
      const maxCreate = await raw.range({ key: b(p), range_end: prefixEnd(p), max_create_revision: rel.abs(2) });
      assert.deepEqual(keys(maxCreate), [p + 'a', p + 'b']);
      const window = await raw.range({ key: b(p), range_end: prefixEnd(p), min_create_revision: rel.abs(2), max_mod_revision: rel.abs(4) });
      assert.deepEqual(keys(window), [p + 'b', p + 'c', p + 'd']);

      const past = await raw.range({ key: b(p), range_end: prefixEnd(p), revision: rel.abs(3) });
      assert.deepEqual({ keys: keys(past), count: past.count }, { keys: [p + 'a', p + 'b', p + 'c'], count: '3' });

      // range_end "\0" means every key >= key.
      const from = await raw.range({ key: b(p + 'd'), range_end: Buffer.from([0]), keys_only: true, limit: 2 });
      assert.deepEqual(keys(from), [p + 'd', p + 'e']);
    });

    test('range: sort by key, create, mod, version and value in both orders, with limit', async () => {
      const p = ns('sort');
      // create order c, a, b; versions c=1, a=2, b=3; last writes c, b, a; values c=m, a=z, b=a.
      await raw.put({ key: b(p + 'c'), value: b('m') });
      await raw.put({ key: b(p + 'a'), value: b('y') });
      await raw.put({ key: b(p + 'b'), value: b('q') });
      await raw.put({ key: b(p + 'b'), value: b('r') });
      await raw.put({ key: b(p + 'b'), value: b('a') });
      await raw.put({ key: b(p + 'a'), value: b('z') });
      const sorted = async (target: string, order: string, limit = 0) =>
        keys(await raw.range({ key: b(p), range_end: prefixEnd(p), sort_target: target, sort_order: order, limit })).map((k) => k.slice(p.length));
      const want: Array<[string, string, string[]]> = [
        ['Key', 'Ascend', ['a', 'b', 'c']],
        ['Key', 'Descend', ['c', 'b', 'a']],
        ['Create', 'Ascend', ['c', 'a', 'b']],
        ['Create', 'Descend', ['b', 'a', 'c']],
        ['Mod', 'Ascend', ['c', 'b', 'a']],
        ['Mod', 'Descend', ['a', 'b', 'c']],
        ['Version', 'Ascend', ['c', 'a', 'b']],
        ['Version', 'Descend', ['b', 'a', 'c']],
        ['Value', 'Ascend', ['b', 'c', 'a']],
        ['Value', 'Descend', ['a', 'c', 'b']],
        // With no order, a target other than the key sorts ascending.
        ['Value', 'None', ['b', 'c', 'a']],
        ['Create', 'None', ['c', 'a', 'b']],
      ];
      for (const [target, order, expected] of want) assert.deepEqual(await sorted(target, order), expected, `sort ${target} ${order}`);

      const top = await raw.range({ key: b(p), range_end: prefixEnd(p), sort_target: 'Mod', sort_order: 'Descend', limit: 2 });
      assert.deepEqual({ keys: keys(top).map((k) => k.slice(p.length)), more: top.more, count: top.count }, { keys: ['a', 'b'], more: true, count: '3' });
      assert.deepEqual(await sorted('Create', 'Ascend', 1), ['c']);
      assert.deepEqual(await sorted('Key', 'Descend', 2), ['c', 'b']);
    });

    test('delete: deleted count, prev_kvs, one revision per call, none when nothing is deleted, recreate', async () => {
      const p = ns('delete');
      const rel = await Rel.now(raw);
      for (const c of ['a', 'b', 'c']) await raw.put({ key: b(p + c), value: b('v' + c) });
      const d1 = await raw.deleteRange({ key: b(p + 'a'), prev_kv: true });
      assert.deepEqual(
        { deleted: d1.deleted, rev: rel.of(d1.header.revision), prev: (d1.prev_kvs as Msg[]).map((kv) => rel.kv(kv)) },
        { deleted: '1', rev: 4, prev: [{ key: p + 'a', value: 'va', create: 1, mod: 1, version: 1, lease: '0' }] },
      );
      const none = await raw.deleteRange({ key: b(p + 'zz'), prev_kv: true });
      assert.deepEqual({ deleted: none.deleted, rev: rel.of(none.header.revision), prev: none.prev_kvs }, { deleted: '0', rev: 4, prev: [] });
      const noPrev = await raw.deleteRange({ key: b(p), range_end: prefixEnd(p) });
      assert.deepEqual({ deleted: noPrev.deleted, rev: rel.of(noPrev.header.revision), prev: noPrev.prev_kvs }, { deleted: '2', rev: 5, prev: [] });
      const gone = await raw.range({ key: b(p), range_end: prefixEnd(p) });
      assert.deepEqual({ count: gone.count, kvs: gone.kvs }, { count: '0', kvs: [] });
      const before = await raw.range({ key: b(p), range_end: prefixEnd(p), revision: rel.abs(4) });
      assert.deepEqual(keys(before), [p + 'b', p + 'c'], 'deleted keys stay readable at earlier revisions');
      await raw.put({ key: b(p + 'a'), value: b('again') });
      const again = await raw.range({ key: b(p + 'a') });
      assert.deepEqual(rel.kv(again.kvs[0]), { key: p + 'a', value: 'again', create: 6, mod: 6, version: 1, lease: '0' });
    });

    test('txn: compares on version, create, mod and value with every operator', async () => {
      const p = ns('txn-cmp');
      const k = b(p + 'k');
      const rel = await Rel.now(raw);
      await raw.put({ key: k, value: b('v1') }); // rel 1
      await raw.put({ key: k, value: b('v2') }); // rel 2: create 1, mod 2, version 2
      const cmp = (target: string, result: string, field: string, value: unknown, key = k) => ({ key, target, result, [field]: value });
      const cases: Array<[Msg, boolean]> = [
        [cmp('Version', 'Equal', 'version', 2), true],
        [cmp('Version', 'Greater', 'version', 1), true],
        [cmp('Version', 'Less', 'version', 2), false],
        [cmp('Version', 'NotEqual', 'version', 2), false],
        [cmp('Create', 'Equal', 'create_revision', rel.abs(1)), true],
        [cmp('Create', 'Less', 'create_revision', rel.abs(2)), true],
        [cmp('Create', 'Greater', 'create_revision', rel.abs(1)), false],
        [cmp('Mod', 'Equal', 'mod_revision', rel.abs(2)), true],
        [cmp('Mod', 'Equal', 'mod_revision', rel.abs(1)), false],
        [cmp('Mod', 'Greater', 'mod_revision', rel.abs(1)), true],
        [cmp('Mod', 'NotEqual', 'mod_revision', rel.abs(1)), true],
        [cmp('Value', 'Equal', 'value', b('v2')), true],
        [cmp('Value', 'Equal', 'value', b('v1')), false],
        [cmp('Value', 'Greater', 'value', b('v1')), true],
        [cmp('Value', 'Less', 'value', b('v3')), true],
        [cmp('Value', 'NotEqual', 'value', b('v2')), false],
        [cmp('Lease', 'Equal', 'lease', 0), true],
        // A key that does not exist has version, create and mod revision 0; any compare of its value fails.
        [cmp('Version', 'Equal', 'version', 0, b(p + 'missing')), true],
        [cmp('Create', 'Equal', 'create_revision', 0, b(p + 'missing')), true],
        [cmp('Mod', 'Less', 'mod_revision', 1, b(p + 'missing')), true],
        [cmp('Value', 'Equal', 'value', Buffer.alloc(0), b(p + 'missing')), false],
        [cmp('Value', 'NotEqual', 'value', b('x'), b(p + 'missing')), false],
      ];
      for (const [c, want] of cases) {
        const r = await raw.txn({ compare: [c] });
        assert.equal(r.succeeded, want, `compare ${JSON.stringify({ ...c, key: c.key.toString(), value: c.value?.toString() })}`);
        assert.equal(rel.of(r.header.revision), 2, 'a txn without writes keeps the revision');
        assert.deepEqual(r.responses, []);
      }
      // All compares must hold.
      const both = await raw.txn({ compare: [cmp('Version', 'Equal', 'version', 2), cmp('Value', 'Equal', 'value', b('nope'))] });
      assert.equal(both.succeeded, false);

      // A compare over a range holds only if it holds for every key in it.
      await raw.put({ key: b(p + 'k2'), value: b('v') }); // rel 3
      const rng = (result: string, rev: number) => ({ key: b(p), range_end: prefixEnd(p), target: 'Create', result, create_revision: rel.abs(rev) });
      assert.equal((await raw.txn({ compare: [rng('Greater', 0)] })).succeeded, true);
      assert.equal((await raw.txn({ compare: [rng('Less', 3)] })).succeeded, false);
      assert.equal((await raw.txn({ compare: [rng('Less', 4)] })).succeeded, true);
    });

    test('txn: branches, responses, one revision for all writes, nested txn, duplicate keys, too many ops', async () => {
      const p = ns('txn');
      const rel = await Rel.now(raw);
      await raw.put({ key: b(p + 'k'), value: b('v1') }); // rel 1
      const ok = await raw.txn({
        compare: [{ key: b(p + 'k'), target: 'Version', result: 'Equal', version: 1 }],
        success: [
          { request_put: { key: b(p + 'k'), value: b('v2'), prev_kv: true } },
          { request_put: { key: b(p + 'x'), value: b('x') } },
          { request_range: { key: b(p), range_end: prefixEnd(p) } },
          { request_delete_range: { key: b(p + 'nothing') } },
        ],
        failure: [{ request_range: { key: b(p + 'k') } }],
      });
      assert.equal(ok.succeeded, true);
      assert.equal(rel.of(ok.header.revision), 2, 'every write of a txn shares one revision');
      assert.deepEqual(
        (ok.responses as Msg[]).map((r) => r.response),
        ['response_put', 'response_put', 'response_range', 'response_delete_range'],
      );
      assert.deepEqual(rel.kv(ok.responses[0].response_put.prev_kv), { key: p + 'k', value: 'v1', create: 1, mod: 1, version: 1, lease: '0' });
      const inner = ok.responses[2].response_range;
      assert.deepEqual(
        (inner.kvs as Msg[]).map((kv) => rel.kv(kv)),
        [
          { key: p + 'k', value: 'v2', create: 1, mod: 2, version: 2, lease: '0' },
          { key: p + 'x', value: 'x', create: 2, mod: 2, version: 1, lease: '0' },
        ],
        'a range inside a txn sees the txn’s earlier writes',
      );
      assert.equal(inner.count, '2');
      assert.equal(ok.responses[3].response_delete_range.deleted, '0');

      const failed = await raw.txn({
        compare: [{ key: b(p + 'k'), target: 'Mod', result: 'Equal', mod_revision: rel.abs(1) }],
        success: [{ request_put: { key: b(p + 'k'), value: b('never') } }],
        failure: [{ request_delete_range: { key: b(p + 'x'), prev_kv: true } }, { request_range: { key: b(p + 'k') } }],
      });
      assert.equal(failed.succeeded, false);
      assert.equal(rel.of(failed.header.revision), 3);
      assert.deepEqual((failed.responses as Msg[]).map((r) => r.response), ['response_delete_range', 'response_range']);
      assert.equal(failed.responses[0].response_delete_range.deleted, '1');
      assert.deepEqual(rel.kv(failed.responses[0].response_delete_range.prev_kvs[0]), { key: p + 'x', value: 'x', create: 2, mod: 2, version: 1, lease: '0' });
      assert.equal(failed.responses[1].response_range.kvs[0].value.toString(), 'v2');

      const deleteNothing = await raw.txn({ success: [{ request_delete_range: { key: b(p + 'nothing') } }] });
      assert.equal(deleteNothing.succeeded, true, 'a txn without compares succeeds');
      assert.equal(rel.of(deleteNothing.header.revision), 3, 'a txn that changes nothing keeps the revision');

      const nested = await raw.txn({
        success: [
          {
            request_txn: {
              compare: [{ key: b(p + 'k'), target: 'Value', result: 'Equal', value: b('v2') }],
              success: [{ request_put: { key: b(p + 'n'), value: b('nested') } }],
            },
          },
        ],
      });
      assert.equal(rel.of(nested.header.revision), 4);
      assert.equal(nested.responses[0].response, 'response_txn');
      assert.equal(nested.responses[0].response_txn.succeeded, true);
      assert.deepEqual((nested.responses[0].response_txn.responses as Msg[]).map((r) => r.response), ['response_put']);
      const n = await raw.range({ key: b(p + 'n') });
      assert.deepEqual(rel.kv(n.kvs[0]), { key: p + 'n', value: 'nested', create: 4, mod: 4, version: 1, lease: '0' });

      const dup = await raw.error(
        raw.txn({ success: [{ request_put: { key: b(p + 'd'), value: b('1') } }, { request_put: { key: b(p + 'd'), value: b('2') } }] }),
      );
      assert.deepEqual(dup, { code: INVALID_ARGUMENT, details: 'etcdserver: duplicate key given in txn request' });
      const dupDel = await raw.error(
        raw.txn({ success: [{ request_put: { key: b(p + 'd'), value: b('1') } }, { request_delete_range: { key: b(p), range_end: prefixEnd(p) } }] }),
      );
      assert.deepEqual(dupDel, { code: INVALID_ARGUMENT, details: 'etcdserver: duplicate key given in txn request' });

      const many = Array.from({ length: 129 }, (_, i) => ({ request_put: { key: b(`${p}many/${i}`), value: b('v') } }));
      assert.deepEqual(await raw.error(raw.txn({ success: many })), { code: INVALID_ARGUMENT, details: 'etcdserver: too many operations in txn request' });
      const okMany = await raw.txn({ success: many.slice(0, 128) });
      assert.equal(rel.of(okMany.header.revision), 5, '128 operations are allowed');
      assert.equal(rel.of((await raw.range({ key: b(p) })).header.revision), 5);
    });

    test('watch: event order, types, prev_kv, txn events share a revision, filters, cancel', async () => {
      const p = ns('watch');
      const w = raw.watch();
      try {
        const rel = await Rel.now(raw);
        const created = await createWatch(w, { key: b(p), range_end: prefixEnd(p), prev_kv: true });
        assert.equal(rel.of(created.header.revision), 0, 'the created response carries the current revision');
        assert.deepEqual(created.events, []);
        const all = created.watch_id as string;
        const onlyDeletes = (await createWatch(w, { key: b(p), range_end: prefixEnd(p), filters: ['Noput'] })).watch_id as string;
        const single = (await createWatch(w, { key: b(p + 'b') })).watch_id as string;
        assert.equal(new Set([all, onlyDeletes, single]).size, 3, 'watch ids on one stream are distinct');

        await raw.put({ key: b(p + 'a'), value: b('v1') }); // 1
        await raw.put({ key: b(p + 'a'), value: b('v2') }); // 2
        await raw.deleteRange({ key: b(p + 'a') }); // 3
        await raw.txn({ success: [{ request_put: { key: b(p + 'b'), value: b('b') } }, { request_put: { key: b(p + 'c'), value: b('c') } }] }); // 4
        await raw.deleteRange({ key: b(p), range_end: prefixEnd(p) }); // 5
        await raw.put({ key: b(p + 'd'), value: b('x') }); // 6, under the prefix too

        const expectAll = [
          { type: 'Put', kv: { key: p + 'a', value: 'v1', create: 1, mod: 1, version: 1, lease: '0' }, prev: null },
          { type: 'Put', kv: { key: p + 'a', value: 'v2', create: 1, mod: 2, version: 2, lease: '0' }, prev: { key: p + 'a', value: 'v1', create: 1, mod: 1, version: 1, lease: '0' } },
          { type: 'Delete', kv: { key: p + 'a', value: '', create: 0, mod: 3, version: 0, lease: '0' }, prev: { key: p + 'a', value: 'v2', create: 1, mod: 2, version: 2, lease: '0' } },
          { type: 'Put', kv: { key: p + 'b', value: 'b', create: 4, mod: 4, version: 1, lease: '0' }, prev: null },
          { type: 'Put', kv: { key: p + 'c', value: 'c', create: 4, mod: 4, version: 1, lease: '0' }, prev: null },
          { type: 'Delete', kv: { key: p + 'b', value: '', create: 0, mod: 5, version: 0, lease: '0' }, prev: { key: p + 'b', value: 'b', create: 4, mod: 4, version: 1, lease: '0' } },
          { type: 'Delete', kv: { key: p + 'c', value: '', create: 0, mod: 5, version: 0, lease: '0' }, prev: { key: p + 'c', value: 'c', create: 4, mod: 4, version: 1, lease: '0' } },
          { type: 'Put', kv: { key: p + 'd', value: 'x', create: 6, mod: 6, version: 1, lease: '0' }, prev: null },
        ];
        // Responses of the three watches interleave on the stream; read until each has all it should get.
        const got = new Map<string, Msg[]>([[all, []], [onlyDeletes, []], [single, []]]);
        const want = new Map([[all, 8], [onlyDeletes, 3], [single, 2]]);
        const responses = await w.until((r) => {
          got.get(r.watch_id)?.push(...(r.events as Msg[]));
          return [...want].every(([id, n]) => got.get(id)!.length >= n);
        }, 10_000);
        assert.deepEqual(got.get(all)!.map((e) => rel.event(e)), expectAll);
        assert.deepEqual(
          got.get(onlyDeletes)!.map((e) => rel.event(e)),
          expectAll.filter((e) => e.type === 'Delete').map((e) => ({ ...e, prev: null })),
          'a Noput watch sees deletes only, and no prev_kv unless asked',
        );
        assert.deepEqual(
          got.get(single)!.map((e) => rel.event(e)),
          expectAll.filter((e) => e.kv.key === p + 'b').map((e) => ({ ...e, prev: null })),
        );
        for (const r of responses) {
          if (r.events.length === 0) continue;
          const last = BigInt(r.events[r.events.length - 1].kv.mod_revision);
          assert.ok(BigInt(r.header.revision) >= last, 'a response header is at least the revision of its events');
          for (const e of r.events as Msg[]) assert.ok(BigInt(e.kv.mod_revision) <= last, 'events within a response are in revision order');
        }
        const revsByResponse = responses.filter((r) => r.watch_id === all && r.events.length).map((r) => new Set((r.events as Msg[]).map((e) => e.kv.mod_revision)));
        for (const rev of [rel.abs(4), rel.abs(5)]) {
          assert.equal(revsByResponse.filter((s) => s.has(rev)).length, 1, `the events of revision +${rel.of(rev)} arrive in one response`);
        }

        // Cancel: a canceled response, then nothing more for that watch.
        w.send({ cancel_request: { watch_id: all } });
        const canceled = await w.next();
        assert.deepEqual({ id: canceled.watch_id, canceled: canceled.canceled, events: canceled.events }, { id: all, canceled: true, events: [] });
        await raw.put({ key: b(p + 'b'), value: b('after-cancel') });
        const afterCancel = await w.next();
        assert.equal(afterCancel.watch_id, single, 'only the remaining watch on the key reports the put');
        await raw.put({ key: b(p + 'zzz'), value: b('unwatched') });
        assert.equal(await w.quietFor(300), true, 'the canceled prefix watch reports nothing more');
      } finally {
        w.close();
      }
    });

    test('watch: ids count from 0 per stream; a progress request answers with the current revision', async () => {
      const p = ns('watch-ids');
      const w = raw.watch();
      try {
        const rel = await Rel.now(raw);
        const first = await createWatch(w, { key: b(p + 'a') });
        const second = await createWatch(w, { key: b(p + 'b') });
        assert.deepEqual([first.watch_id, second.watch_id], ['0', '1']);
        await raw.put({ key: b(p + 'c'), value: b('unwatched') }); // 1
        w.send({ progress_request: {} });
        const progress = await w.next();
        assert.deepEqual(
          { id: progress.watch_id, rev: rel.of(progress.header.revision), events: progress.events, created: progress.created, canceled: progress.canceled },
          { id: '-1', rev: 1, events: [], created: false, canceled: false },
        );
      } finally {
        w.close();
      }
    });

    test('watch: from a start revision replays history, then continues live', async () => {
      const p = ns('watch-history');
      const rel = await Rel.now(raw);
      await raw.put({ key: b(p + 'a'), value: b('1') }); // 1
      await raw.put({ key: b(p + 'b'), value: b('2') }); // 2
      await raw.put({ key: b(p + 'a'), value: b('3') }); // 3
      await raw.deleteRange({ key: b(p + 'b') }); // 4
      const w = raw.watch();
      try {
        const created = await createWatch(w, { key: b(p), range_end: prefixEnd(p), start_revision: rel.abs(2), prev_kv: true });
        assert.equal(rel.of(created.header.revision), 4);
        const first = await collectEvents(w, 3, created.watch_id);
        assert.deepEqual(events(first).map((e) => rel.event(e)), [
          { type: 'Put', kv: { key: p + 'b', value: '2', create: 2, mod: 2, version: 1, lease: '0' }, prev: null },
          { type: 'Put', kv: { key: p + 'a', value: '3', create: 1, mod: 3, version: 2, lease: '0' }, prev: { key: p + 'a', value: '1', create: 1, mod: 1, version: 1, lease: '0' } },
          { type: 'Delete', kv: { key: p + 'b', value: '', create: 0, mod: 4, version: 0, lease: '0' }, prev: { key: p + 'b', value: '2', create: 2, mod: 2, version: 1, lease: '0' } },
        ]);
        await raw.put({ key: b(p + 'c'), value: b('live') }); // 5
        const live = await collectEvents(w, 1, created.watch_id);
        assert.deepEqual(events(live).map((e) => rel.event(e)), [
          { type: 'Put', kv: { key: p + 'c', value: 'live', create: 5, mod: 5, version: 1, lease: '0' }, prev: null },
        ]);

        // A start revision in the future waits for it.
        const future = await createWatch(w, { key: b(p), range_end: prefixEnd(p), start_revision: rel.abs(7) });
        await raw.put({ key: b(p + 'd'), value: b('6') }); // 6: before the start revision, not reported to `future`
        await raw.put({ key: b(p + 'd'), value: b('7') }); // 7
        const fut = await collectEvents(w, 1, future.watch_id);
        assert.deepEqual(events(fut).map((e) => rel.event(e).kv), [{ key: p + 'd', value: '7', create: 6, mod: 7, version: 2, lease: '0' }]);
      } finally {
        w.close();
      }
    });

    test('compaction: range and watch below the compacted revision fail with ErrCompacted; future revisions are refused', async () => {
      const p = ns('compact');
      const k = b(p + 'k');
      const rel = await Rel.now(raw);
      await raw.put({ key: k, value: b('v1') }); // 1
      await raw.put({ key: k, value: b('v2') }); // 2
      await raw.put({ key: k, value: b('v3') }); // 3
      const c = await raw.compact({ revision: rel.abs(2), physical: true });
      assert.equal(rel.of(c.header.revision), 3, 'compaction does not create a revision');

      const compacted = { code: OUT_OF_RANGE, details: 'etcdserver: mvcc: required revision has been compacted' };
      const future = { code: OUT_OF_RANGE, details: 'etcdserver: mvcc: required revision is a future revision' };
      assert.deepEqual(await raw.error(raw.range({ key: k, revision: rel.abs(1) })), compacted);
      const atCompacted = await raw.range({ key: k, revision: rel.abs(2) });
      assert.equal(atCompacted.kvs[0].value.toString(), 'v2', 'the compacted revision itself stays readable');
      assert.deepEqual(await raw.error(raw.compact({ revision: rel.abs(2) })), compacted, 'compacting again at the same revision');
      assert.deepEqual(await raw.error(raw.compact({ revision: rel.abs(1) })), compacted);
      assert.deepEqual(await raw.error(raw.compact({ revision: rel.abs(10) })), future);
      assert.deepEqual(await raw.error(raw.range({ key: k, revision: rel.abs(10) })), future);
      // In a txn the same errors surface.
      assert.deepEqual(await raw.error(raw.txn({ success: [{ request_range: { key: k, revision: rel.abs(1) } }] })), compacted);

      const w = raw.watch();
      try {
        const created = await createWatch(w, { key: k, start_revision: rel.abs(1) });
        const cancel = await w.next();
        assert.deepEqual(
          { id: cancel.watch_id, canceled: cancel.canceled, compact: rel.of(cancel.compact_revision), events: cancel.events },
          { id: created.watch_id, canceled: true, compact: 2, events: [] },
          'a watch from a compacted revision is canceled with the compact revision',
        );
        const ok = await createWatch(w, { key: k, start_revision: rel.abs(2) });
        const replay = await collectEvents(w, 2, ok.watch_id);
        assert.deepEqual(events(replay).map((e) => rel.event(e).kv?.value), ['v2', 'v3']);
      } finally {
        w.close();
      }
      const after = await raw.range({ key: k });
      assert.equal(after.kvs[0].value.toString(), 'v3');
    });

    test('leases: grant, attach, time-to-live, keepalive, revoke deletes the keys in one revision, errors', async () => {
      const p = ns('lease');
      const g = await raw.leaseGrant({ TTL: 30 });
      assert.equal(g.TTL, '30');
      assert.equal(g.error, '');
      assert.notEqual(g.ID, '0');
      const id = g.ID as string;
      const rel = await Rel.now(raw);
      assert.equal(rel.of(g.header.revision), 0, 'a grant does not create a revision');

      await raw.put({ key: b(p + 'a'), value: b('a'), lease: id });
      await raw.put({ key: b(p + 'b'), value: b('b'), lease: id });
      const got = await raw.range({ key: b(p), range_end: prefixEnd(p) });
      assert.deepEqual((got.kvs as Msg[]).map((kv) => rel.kv(kv)), [
        { key: p + 'a', value: 'a', create: 1, mod: 1, version: 1, lease: id },
        { key: p + 'b', value: 'b', create: 2, mod: 2, version: 1, lease: id },
      ]);
      // ignore_lease keeps the attached lease; a plain put detaches it.
      await raw.put({ key: b(p + 'a'), value: b('a2'), ignore_lease: true });
      assert.equal((await raw.range({ key: b(p + 'a') })).kvs[0].lease, id);

      const ttl = await raw.leaseTimeToLive({ ID: id, keys: true });
      assert.equal(ttl.ID, id);
      assert.equal(ttl.grantedTTL, '30');
      assert.ok(Number(ttl.TTL) > 25 && Number(ttl.TTL) <= 30, `TTL ${ttl.TTL}`);
      assert.deepEqual((ttl.keys as Buffer[]).map((k) => k.toString()).sort(), [p + 'a', p + 'b']);
      const noKeys = await raw.leaseTimeToLive({ ID: id });
      assert.deepEqual(noKeys.keys, []);

      const leases = await raw.leaseLeases();
      assert.ok((leases.leases as Msg[]).some((l) => l.ID === id), 'Leases lists the granted lease');

      const ka = raw.keepAliveStream();
      try {
        const r = await ka.keepAlive(id);
        assert.deepEqual({ id: r.ID, ttl: r.TTL }, { id, ttl: '30' });

        const w = raw.watch();
        try {
          const wc = await createWatch(w, { key: b(p), range_end: prefixEnd(p) });
          const rv = await raw.leaseRevoke({ ID: id });
          assert.equal(rel.of(rv.header.revision), 4, 'revoking deletes every attached key in one revision');
          const del = await collectEvents(w, 2, wc.watch_id);
          assert.deepEqual(
            events(del).map((e) => rel.event(e)).sort((x, y) => (x.kv!.key < y.kv!.key ? -1 : 1)),
            [
              { type: 'Delete', kv: { key: p + 'a', value: '', create: 0, mod: 4, version: 0, lease: '0' }, prev: null },
              { type: 'Delete', kv: { key: p + 'b', value: '', create: 0, mod: 4, version: 0, lease: '0' }, prev: null },
            ],
          );
        } finally {
          w.close();
        }
        assert.deepEqual((await raw.range({ key: b(p), range_end: prefixEnd(p) })).kvs, []);
        const dead = await ka.keepAlive(id);
        assert.deepEqual({ id: dead.ID, ttl: dead.TTL }, { id, ttl: '0' }, 'keepalive of a revoked lease answers TTL 0');
      } finally {
        ka.close();
      }
      const gone = await raw.leaseTimeToLive({ ID: id, keys: true });
      assert.deepEqual({ ID: gone.ID, TTL: gone.TTL, grantedTTL: gone.grantedTTL, keys: gone.keys }, { ID: id, TTL: '-1', grantedTTL: '0', keys: [] });

      const notFound = { code: NOT_FOUND, details: 'etcdserver: requested lease not found' };
      assert.deepEqual(await raw.error(raw.leaseRevoke({ ID: id })), notFound);
      assert.deepEqual(await raw.error(raw.put({ key: b(p + 'c'), value: b('c'), lease: id })), notFound);
      assert.deepEqual(await raw.error(raw.txn({ success: [{ request_put: { key: b(p + 'c'), value: b('c'), lease: '7' } }] })), notFound);

      // A client-chosen ID (above 2^53, so it only survives as a decimal string) is kept; granting it twice fails.
      const chosen = (2n ** 62n + BigInt(Math.floor(Math.random() * 1e9))).toString();
      const gc = await raw.leaseGrant({ ID: chosen, TTL: 60 });
      assert.equal(gc.ID, chosen);
      assert.deepEqual(await raw.error(raw.leaseGrant({ ID: chosen, TTL: 60 })), { code: FAILED_PRECONDITION, details: 'etcdserver: lease already exists' });
      await raw.put({ key: b(p + 'big'), value: b('x'), lease: chosen });
      assert.equal((await raw.range({ key: b(p + 'big') })).kvs[0].lease, chosen);
      await raw.leaseRevoke({ ID: chosen });
      assert.deepEqual((await raw.range({ key: b(p + 'big') })).kvs, []);

      assert.deepEqual(await raw.error(raw.leaseGrant({ TTL: 9_000_000_001 })), { code: OUT_OF_RANGE, details: 'etcdserver: too large lease TTL' });

      // TTLs below the minimum (1.5 election timeouts, rounded up: 2 s with etcd's defaults) are raised to it.
      for (const asked of [1, 0, -5]) {
        const short = await raw.leaseGrant({ TTL: asked });
        assert.equal(short.TTL, '2', `grant TTL ${asked}`);
        await raw.leaseRevoke({ ID: short.ID });
      }
      const unknown = await raw.leaseTimeToLive({ ID: '12345' });
      assert.deepEqual({ ID: unknown.ID, TTL: unknown.TTL, grantedTTL: unknown.grantedTTL }, { ID: '12345', TTL: '-1', grantedTTL: '0' });
    });

    test('leases: keepalive holds a lease past its TTL; expiry then deletes its keys', async () => {
      const p = ns('lease-expiry');
      const g = await raw.leaseGrant({ TTL: 2 });
      const id = g.ID as string;
      assert.equal(g.TTL, '2');
      await raw.put({ key: b(p + 'k'), value: b('v'), lease: id });
      const w = raw.watch();
      const ka = raw.keepAliveStream();
      try {
        const wc = await createWatch(w, { key: b(p), range_end: prefixEnd(p) });
        // Renew every 0.5 s for 3 s, longer than the TTL: the key must survive.
        const until = Date.now() + 3000;
        while (Date.now() < until) {
          const r = await ka.keepAlive(id);
          assert.equal(r.TTL, '2');
          await new Promise((res) => setTimeout(res, 500));
        }
        assert.equal((await raw.range({ key: b(p + 'k') })).kvs.length, 1, 'a kept-alive lease does not expire');
        ka.close();
        const expired = await collectEvents(w, 1, wc.watch_id);
        assert.deepEqual(events(expired).map((e) => ({ type: e.type, key: e.kv.key.toString() })), [{ type: 'Delete', key: p + 'k' }]);
        assert.deepEqual((await raw.range({ key: b(p + 'k') })).kvs, []);
        await waitFor('the expired lease to be gone', async () => (await raw.leaseTimeToLive({ ID: id })).TTL === '-1', 5000, 100);
      } finally {
        ka.close();
        w.close();
      }
    });

    test('bad input: empty key, future revision, ignore_value on a missing key, oversized requests', async () => {
      const p = ns('bad');
      const noKey = { code: INVALID_ARGUMENT, details: 'etcdserver: key is not provided' };
      assert.deepEqual(await raw.error(raw.put({ key: Buffer.alloc(0), value: b('v') })), noKey);
      assert.deepEqual(await raw.error(raw.range({ key: Buffer.alloc(0) })), noKey);
      assert.deepEqual(await raw.error(raw.deleteRange({ key: Buffer.alloc(0) })), noKey);
      assert.deepEqual(await raw.error(raw.txn({ success: [{ request_put: { key: Buffer.alloc(0), value: b('v') } }] })), noKey);
      assert.deepEqual(await raw.error(raw.txn({ compare: [{ key: Buffer.alloc(0), target: 'Version', result: 'Equal', version: 0 }] })), noKey);

      const rel = await Rel.now(raw);
      assert.deepEqual(await raw.error(raw.range({ key: b(p + 'k'), revision: rel.abs(1000) })), {
        code: OUT_OF_RANGE,
        details: 'etcdserver: mvcc: required revision is a future revision',
      });
      assert.deepEqual(await raw.error(raw.put({ key: b(p + 'missing'), ignore_value: true })), { code: INVALID_ARGUMENT, details: 'etcdserver: key not found' });
      assert.deepEqual(await raw.error(raw.put({ key: b(p + 'missing'), ignore_lease: true })), { code: INVALID_ARGUMENT, details: 'etcdserver: key not found' });
      assert.deepEqual(await raw.error(raw.put({ key: b(p + 'v'), value: b('v'), ignore_value: true })), {
        code: INVALID_ARGUMENT,
        details: 'etcdserver: value is provided',
      });
      assert.deepEqual(await raw.error(raw.put({ key: b(p + 'v'), lease: '5', ignore_lease: true })), {
        code: INVALID_ARGUMENT,
        details: 'etcdserver: lease is provided',
      });

      // The request limit is 1.5 MiB; the transport takes up to 2 MiB, above which the message itself is refused.
      const tooLarge = await raw.error(raw.put({ key: b(p + 'big'), value: Buffer.alloc(1.5 * 1024 * 1024 + 1024, 0x61) }));
      assert.deepEqual(tooLarge, { code: INVALID_ARGUMENT, details: 'etcdserver: request is too large' });
      const huge = await raw.error(raw.put({ key: b(p + 'huge'), value: Buffer.alloc(3 * 1024 * 1024, 0x61) }));
      assert.equal(huge.code, RESOURCE_EXHAUSTED, `a 3 MiB request: ${huge.details}`);
      const fits = await raw.put({ key: b(p + 'fits'), value: Buffer.alloc(1024 * 1024, 0x61) });
      assert.equal(rel.of(fits.header.revision), 1, 'a 1 MiB value is accepted');
      assert.equal((await raw.range({ key: b(p + 'fits') })).kvs[0].value.length, 1024 * 1024);
      assert.equal(rel.of((await raw.range({ key: b(p + 'fits') })).header.revision), 1, 'refused requests create no revision');
    });

    test('the npm etcd3 client: lock, election and a watch work end to end', async () => {
      const p = ns('etcd3');
      const etcd = new Etcd3({
        hosts: store.endpoints,
        credentials: { rootCertificate: Buffer.from(store.tls.ca), privateKey: Buffer.from(store.tls.key), certChain: Buffer.from(store.tls.cert) },
      });
      try {
        const lock = etcd.lock(p + 'lock').ttl(5);
        await lock.acquire();
        await assert.rejects(etcd.lock(p + 'lock').acquire(), (e: Error) => e.constructor.name === 'EtcdLockFailedError', 'a held lock cannot be taken');
        await lock.release();
        const again = await etcd.lock(p + 'lock').ttl(5).acquire();
        await again.release();

        const election = etcd.election(p + 'election', 5);
        const first = election.campaign('first');
        await first.wait();
        const second = election.campaign('second');
        assert.equal(await election.leader(), 'first');
        await first.resign();
        // Not `second.wait()`: etcd3 watches the key before its own only after campaign() has listed it, and a resign
        // in between is missed (a race in the library, seen under load), so the wait would hang. Who leads is the store's
        // answer either way.
        await waitFor('the second candidate to lead', async () => ((await election.leader()) === 'second' ? true : undefined), 5000);
        await second.resign();

        const seen: string[] = [];
        const watcher = await etcd.watch().prefix(p + 'w/').create();
        watcher.on('put', (kv) => seen.push(kv.value.toString()));
        await etcd.put(p + 'w/a').value('1');
        await etcd.put(p + 'w/a').value('2');
        await waitFor('two etcd3 watch events', () => seen.length >= 2 || undefined, 5000);
        assert.deepEqual(seen, ['1', '2']);
        await watcher.cancel();
      } finally {
        etcd.close();
      }
    });

    test('maintenance: status reports version, revision, db size and a leader', async () => {
      const rel = await Rel.now(raw);
      const s = await raw.status();
      assert.match(s.version, /^3\.\d+\.\d+/);
      assert.equal(rel.of(s.header.revision), 0);
      assert.ok(Number(s.dbSize) > 0, 'dbSize');
      assert.notEqual(s.leader, '0');
      assert.notEqual(s.header.member_id, '0');
      assert.notEqual(s.header.cluster_id, '0');
      assert.deepEqual(s.errors, []);
    });
  });
}
