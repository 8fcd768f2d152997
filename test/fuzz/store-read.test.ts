// Regressions found by fuzzing the store's read path (fuzz/targets/etcd-read.fuzz.ts), on a real store in a temp folder.
import type * as grpc from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { DEFAULT_TUNING, StoreCore } from '../../src/store/server/core.js';
import type { RangeRequest } from '../../src/store/server/messages.js';
import { etcdPackageDefinition } from '../../src/store/server/proto.js';
import { systemClock } from '../../src/util/clock.js';
import { tempDir } from '../helpers/tmp.js';

const Range = (etcdPackageDefinition()['etcdserverpb.KV'] as grpc.ServiceDefinition).Range as grpc.MethodDefinition<unknown, unknown>;

test('a Range with a sort order etcd does not know answers in key order, on both the SQL and the key-by-key path', async () => {
  const dir = tempDir('tp-fuzz-store-');
  const core = new StoreCore({ dbPath: join(dir.path, 'state.db'), synchronous: 'NORMAL', clock: systemClock, identity: { clusterId: '1', memberId: '2', name: 't' }, tuning: DEFAULT_TUNING });
  try {
    for (const k of ['a', 'b', 'c']) {
      await core.writes.submit({ kind: 'put', req: { key: Buffer.from(k), value: Buffer.from(k), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false } });
    }
    // key "a", range_end "\0" (every key from "a"), sort_order 5: protobufjs hands an unknown enum value over as its number.
    const req = Range.requestDeserialize(Buffer.from([0x0a, 0x01, 0x61, 0x12, 0x01, 0x00, 0x28, 0x05])) as RangeRequest;
    assert.equal(req.sort_order as unknown, 5);
    // etcd sorts only for ASCEND and DESCEND (apply.go); any other order leaves the keys as the index returns them.
    const keys = core.applier.range(req).kvs.map((kv) => kv.key.toString());
    assert.deepEqual(keys, ['a', 'b', 'c']);
    const wire = core.applier.rangeWire(req);
    assert.ok(wire, 'the SQL-encoded path serves a key-ordered range');
    assert.equal(wire.count, 3);
  } finally {
    core.close();
    dir.remove();
  }
});
