// The real etcdctl 3.4 against the store server over mutual TLS: the commands operators and scripts use.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { removeDir, startTestStore, type TestStore } from './helpers.js';

describe('store server with etcdctl', () => {
  let t: TestStore;
  before(async () => {
    t = await startTestStore();
  });
  after(async () => {
    await t.close();
    removeDir(t.dir);
  });

  const ok = async (args: string[], input?: string) => {
    const r = await t.etcdctl(args, { input });
    assert.equal(r.code, 0, `etcdctl ${args.join(' ')} failed: ${r.stderr}`);
    return r.stdout;
  };

  it('put, get, get -w json, get --prefix, del', async () => {
    assert.equal(await ok(['put', 'ctl/a', 'one']), 'OK\n');
    await ok(['put', 'ctl/b', 'two']);
    assert.equal(await ok(['get', 'ctl/a']), 'ctl/a\none\n');
    const json = JSON.parse(await ok(['get', 'ctl/a', '-w', 'json']));
    assert.equal(json.count, 1);
    assert.equal(Buffer.from(json.kvs[0].value, 'base64').toString(), 'one');
    assert.equal(json.kvs[0].version, 1);
    assert.equal(await ok(['get', 'ctl/', '--prefix', '--keys-only']), 'ctl/a\n\nctl/b\n\n');
    assert.equal(await ok(['del', 'ctl/', '--prefix']), '2\n');
    assert.equal(await ok(['get', 'ctl/a']), '');
  });

  it('txn from standard input takes the right branch', async () => {
    await ok(['put', 'ctl/t', 'v1']);
    const out = await ok(['txn'], 'value("ctl/t") = "v1"\n\nput ctl/t v2\n\nput ctl/t failed\n\n');
    assert.match(out, /^SUCCESS\n\nOK\n/);
    assert.equal(await ok(['get', 'ctl/t', '--print-value-only']), 'v2\n');
    const miss = await ok(['txn'], 'value("ctl/t") = "v1"\n\nput ctl/t v3\n\nput ctl/t else\n\n');
    assert.match(miss, /^FAILURE\n\nOK\n/);
    assert.equal(await ok(['get', 'ctl/t', '--print-value-only']), 'else\n');
  });

  it('watch --rev replays history', async () => {
    const rev = JSON.parse(await ok(['put', 'ctl/w', 'first', '-w', 'json'])).header.revision as number;
    await ok(['put', 'ctl/w', 'second']);
    await ok(['del', 'ctl/w']);
    // etcdctl watch never exits by itself: it is stopped after a moment, with what it printed kept.
    const r = await t.etcdctl(['watch', 'ctl/w', `--rev=${rev}`], { timeoutMs: 1500 });
    assert.equal(r.stdout, 'PUT\nctl/w\nfirst\nPUT\nctl/w\nsecond\nDELETE\nctl/w\n\n');
  });

  it('lease grant, put --lease, keep-alive --once, timetolive --keys, list, revoke', async () => {
    const granted = await ok(['lease', 'grant', '60']);
    const m = /^lease ([0-9a-f]+) granted with TTL\(60s\)/.exec(granted);
    assert.ok(m, granted);
    const id = m[1];
    await ok(['put', '--lease', id, 'ctl/leased', 'v']);
    assert.match(await ok(['lease', 'keep-alive', '--once', id]), new RegExp(`^lease ${id} keepalived with TTL\\(60\\)`));
    assert.match(await ok(['lease', 'timetolive', id, '--keys']), new RegExp(`lease ${id} granted with TTL\\(60s\\), remaining\\(\\d+s\\), attached keys\\(\\[ctl/leased\\]\\)`));
    assert.match(await ok(['lease', 'list']), new RegExp(id));
    assert.match(await ok(['lease', 'revoke', id]), new RegExp(`lease ${id} revoked`));
    assert.equal(await ok(['get', 'ctl/leased']), '');
  });

  it('endpoint status, endpoint health and member list over an https:// endpoint', async () => {
    const status = JSON.parse(await ok(['endpoint', 'status', '-w', 'json']));
    assert.equal(status[0].Endpoint, t.server.endpoint);
    assert.equal(status[0].Status.version, '3.4.23');
    assert.equal(status[0].Status.leader, status[0].Status.header.member_id);
    const table = await ok(['endpoint', 'status', '-w', 'table']);
    assert.match(table, /3\.4\.23/);
    // etcdctl prints health to standard error.
    const health = await t.etcdctl(['endpoint', 'health']);
    assert.equal(health.code, 0);
    assert.match(health.stdout + health.stderr, new RegExp(`${t.server.endpoint} is healthy: successfully committed proposal`));
    const members = await ok(['member', 'list']);
    assert.match(members, new RegExp(`started, default, , ${t.server.endpoint.replace(/[.]/g, '\\.')}, false`));
  });

  it('compaction, then reading below it fails with etcd\'s error', async () => {
    const r1 = JSON.parse(await ok(['put', 'ctl/c', '1', '-w', 'json'])).header.revision as number;
    const r2 = JSON.parse(await ok(['put', 'ctl/c', '2', '-w', 'json'])).header.revision as number;
    assert.equal(await ok(['compaction', '--physical', String(r2)]), `compacted revision ${r2}\n`);
    const below = await t.etcdctl(['get', 'ctl/c', `--rev=${r1}`]);
    assert.notEqual(below.code, 0);
    assert.match(below.stderr, /required revision has been compacted/);
    assert.equal(await ok(['get', 'ctl/c', `--rev=${r2}`, '--print-value-only']), '2\n');
  });

  it('lock runs a command while holding the lock (sessions, sorted ranges, watches)', async () => {
    const out = await ok(['lock', 'ctl-lock', 'echo', 'holding']);
    assert.equal(out.trim().split('\n').pop(), 'holding');
    // The lock key is gone once the command ended.
    assert.equal(await ok(['get', 'ctl-lock', '--prefix', '--keys-only']), '');
  });
});
