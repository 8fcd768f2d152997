// A 3-member TLS etcd under the store client: acknowledged writes survive a member killed with -9, which then rejoins; foreign client certificates are refused.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { connect } from 'node:tls';
import { openStore } from '../../../src/store/client.js';
import { TrustplaneError } from '../../../src/util/errors.js';
import { waitFor } from '../../../src/util/wait.js';
import { startEtcdCluster, type EtcdCluster } from '../../helpers/etcd-cluster.js';
import { makeOpensslCa } from '../../helpers/openssl-certs.js';
import { rawClient } from '../conformance/raw.js';

const TOTAL = 3000;
const CONCURRENCY = 16;
const KILL_AT = 1000;

describe('etcd 3.4: three members over TLS', { concurrency: 1 }, () => {
  let cluster: EtcdCluster;
  before(async () => {
    cluster = await startEtcdCluster({ members: 3 });
  });
  after(async () => {
    await cluster?.stop();
  });

  test('the leader is killed -9 mid-way: writes go on, every acknowledged write is there, the member rejoins', async (t) => {
    const store = await openStore({ endpoints: cluster.endpoints, tls: cluster.tls, timeoutMs: 10_000 });
    try {
      const status = await store.status();
      const leader = status.findIndex((s) => s.isLeader);
      assert.ok(leader >= 0, `one member leads: ${JSON.stringify(status, (_, v) => (typeof v === 'bigint' ? String(v) : v))}`);

      const key = (i: number) => `/three/${String(i).padStart(5, '0')}`;
      const acked = new Set<number>();
      const failed = new Map<number, string>();
      let killedAt = 0;
      let ackedAfterKill = 0;
      let next = 0;
      let killing: Promise<void> | undefined;
      const writer = async () => {
        while (next < TOTAL) {
          const i = next++;
          const sentAt = Date.now();
          try {
            await store.put(key(i), `v${i}`);
            acked.add(i);
            if (killedAt && sentAt > killedAt) ackedAfterKill++;
          } catch (e) {
            failed.set(i, (e as Error).message);
          }
          if (acked.size >= KILL_AT && !killing) {
            killing = cluster.killMember(leader).then(() => {
              killedAt = Date.now();
            });
          }
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, writer));
      await killing;

      t.diagnostic(`${acked.size} acknowledged (${ackedAfterKill} sent after the kill), ${failed.size} failed`);
      assert.ok(killedAt > 0, 'the leader was killed');
      assert.ok(ackedAfterKill > 500, `writes went on after the kill (${ackedAfterKill} acknowledged)`);
      // Failover hides the failure from callers: at most the few puts in flight at the kill may fail.
      assert.ok(failed.size <= CONCURRENCY, `failed writes: ${failed.size} ${[...failed.values()].slice(0, 3).join(' | ')}`);

      const all = await store.getPrefix('/three/');
      const stored = new Map(all.kvs.map((kv) => [kv.key, kv.value.toString()]));
      const missing = [...acked].filter((i) => stored.get(key(i)) !== `v${i}`);
      assert.deepEqual(missing, [], 'every acknowledged write is present with its value');
      assert.equal(acked.size + failed.size, TOTAL);

      // The killed member restarts on its data dir, catches up, and serves what the others have.
      await cluster.restartMember(leader);
      const raw = rawClient(cluster.endpoints[leader], cluster.tls);
      try {
        await waitFor(
          'the restarted member to catch up',
          async () => {
            const r = await raw.range({ key: Buffer.from('/three/'), range_end: Buffer.from('/three0'), count_only: true, serializable: true });
            return Number(r.count) === stored.size || undefined;
          },
          20_000,
          100,
        );
      } finally {
        raw.close();
      }
      const after = await store.status();
      assert.ok(after.every((s) => !s.error), `all members answer: ${after.map((s) => s.error ?? 'ok').join(', ')}`);
      assert.equal(new Set(after.map((s) => s.leader)).size, 1, 'all members agree on one leader');
    } finally {
      await store.close();
    }
  });

  test('client certificates from the peer CA or another cluster’s CA are refused by the client port', async (t) => {
    const peerCert = cluster.material.members[0].peer; // issued by the peer CA, with clientAuth
    const other = makeOpensslCa('another cluster API CA');
    const otherClient = other.issue('client', { cn: 'intruder', eku: ['clientAuth'] });
    const endpoint = cluster.endpoints[0];
    const [host, port] = endpoint.replace('https://', '').split(':');

    for (const [what, cred] of [
      ['peer CA', peerCert],
      ['another cluster’s CA', otherClient],
    ] as const) {
      // At the TLS layer: the member ends the handshake with an alert.
      const tlsError = await new Promise<string>((resolve) => {
        const sock = connect({ host, port: Number(port), ca: cluster.tls.ca, cert: cred.cert, key: cred.key, ALPNProtocols: ['h2'] });
        sock.on('error', (e) => resolve((e as NodeJS.ErrnoException).code ?? e.message));
        sock.on('close', () => resolve('closed'));
        sock.on('secureConnect', () => sock.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'));
        sock.setTimeout(5000, () => resolve('timeout'));
      });
      t.diagnostic(`${what}: TLS ${tlsError}`);
      assert.match(tlsError, /BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN/, `${what}: ${tlsError}`);

      // Through the store client: no endpoint answers.
      const s = await openStore({ endpoints: [endpoint], tls: { cert: cred.cert, key: cred.key, ca: cluster.tls.ca }, timeoutMs: 1500 });
      try {
        const e = await s.get('/three/00000').then(
          () => assert.fail(`${what}: the read succeeded`),
          (err: unknown) => err,
        );
        assert.ok(e instanceof TrustplaneError && e.reason === 'Unavailable', `${what}: ${e}`);
        assert.ok(e.message.includes(endpoint), e.message);
        assert.match(e.message, /bad certificate/);
        assert.match(e.hint ?? '', /refused the client certificate/);
        t.diagnostic(`${what}: ${e.message}`);
      } finally {
        await s.close();
      }
    }
    rmSync(other.dir, { recursive: true, force: true });
    // The cluster's own client certificate still works.
    const ok = await openStore({ endpoints: [endpoint], tls: cluster.tls, timeoutMs: 5000 });
    try {
      assert.ok(await ok.get('/three/00000'));
    } finally {
      await ok.close();
    }
  });
});
