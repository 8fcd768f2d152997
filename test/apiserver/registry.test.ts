// The typed registry the controllers share with the handlers: optimistic concurrency, watch from a revision, tokens at rest; and watch over HTTP.
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { after, before, describe, it } from 'node:test';
import {
  authenticateBootstrapToken,
  createBootstrapToken,
  CsrRegistry,
  listBootstrapTokens,
  NodeRegistry,
  type CertificateSigningRequest,
  type ObjectEvent,
} from '../../src/apiserver/index.js';
import { TrustplaneError } from '../../src/util/errors.js';
import { waitFor } from '../../src/util/wait.js';
import { opensslCsr } from '../helpers/openssl.js';
import { call, csrManifest, startTestCluster, type Credentials, type TestCluster } from './harness.js';

const CSRS = '/apis/certificates.k8s.io/v1/certificatesigningrequests';
const ADMIN = { name: 'admin', groups: ['system:masters'] };

/** Opens a watch over HTTPS and collects its events until stop(). */
function watchHttp(c: TestCluster, creds: Credentials, path: string, accept = 'application/json') {
  const events: Array<{ type: string; object: any }> = []; // eslint-disable-line @typescript-eslint/no-explicit-any
  let buf = '';
  let ended = false;
  const req = request(new URL(path, c.api.url), {
    ca: c.ca.cert,
    cert: creds.cert,
    key: creds.key,
    agent: false,
    headers: { Accept: accept, ...(creds.token ? { Authorization: `Bearer ${creds.token}` } : {}) },
  });
  const status = new Promise<number>((resolve, reject) => {
    req.on('response', (res) => {
      resolve(res.statusCode ?? 0);
      res.setEncoding('utf8');
      res.on('data', (d) => {
        buf += d;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          events.push(JSON.parse(buf.slice(0, i)));
          buf = buf.slice(i + 1);
        }
      });
      res.on('end', () => (ended = true));
      res.on('error', () => (ended = true));
    });
    req.on('error', reject);
  });
  req.end();
  return { events, status, ended: () => ended, stop: () => req.destroy() };
}

describe('registry and watch', () => {
  let c: TestCluster;
  let csrs: CsrRegistry;
  let pem: string;

  before(async () => {
    c = await startTestCluster();
    csrs = new CsrRegistry(c.store);
    pem = opensslCsr(c.dir, 'n1', { subj: '/CN=system:node:n1/O=system:nodes' });
  });
  after(() => c?.stop());

  const manifest = (name: string) => csrManifest(name, pem) as unknown as CertificateSigningRequest;

  it('resourceVersion is the store mod revision; a stale write is a 409 Conflict', async () => {
    const created = await csrs.create(manifest('r1'), ADMIN);
    const kv = await c.store.get('/registry/certificatesigningrequests/r1');
    assert.equal(created.metadata.resourceVersion, kv!.modRevision.toString());
    const a = structuredClone(created);
    a.metadata.labels = { a: '1' };
    const b = structuredClone(created);
    b.metadata.labels = { b: '1' };
    const results = await Promise.allSettled([csrs.update(a), csrs.update(b)]);
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    assert.ok(failed.reason instanceof TrustplaneError && failed.reason.reason === 'Conflict');
    assert.match(failed.reason.message, /Operation cannot be fulfilled on certificatesigningrequests.certificates.k8s.io "r1": the object has been modified/);
  });

  it('an update that starts from the object this process last wrote still loses to a write made elsewhere (409)', async () => {
    const created = await csrs.create(manifest('r-elsewhere'), ADMIN);
    const key = '/registry/certificatesigningrequests/r-elsewhere';
    // Another writer (another host, etcdctl) changes the object behind this process's back.
    const kv = await c.store.get(key);
    const theirs = JSON.parse(kv!.value.toString('utf8'));
    theirs.metadata.labels = { theirs: '1' };
    await c.store.put(key, JSON.stringify(theirs));
    const mine = structuredClone(created);
    mine.metadata.labels = { mine: '1' };
    await assert.rejects(csrs.update(mine), (e: TrustplaneError) => e.reason === 'Conflict');
    const now = await csrs.objects.get('r-elsewhere');
    assert.deepEqual(now.metadata.labels, { theirs: '1' }, 'their write stands');
    // From the current object, the same change goes through, twice in a row (the second from what was just written).
    const once = await csrs.update({ ...now, metadata: { ...now.metadata, labels: { mine: '1' } } });
    const twice = await csrs.update({ ...once, metadata: { ...once.metadata, labels: { mine: '2' } } });
    assert.equal((await c.store.get(key))!.modRevision.toString(), twice.metadata.resourceVersion);
    assert.deepEqual((await csrs.objects.get('r-elsewhere')).metadata.labels, { mine: '2' });
  });

  it('generateName, and spec.username from the requester only', async () => {
    const m = manifest('');
    m.metadata = { name: '', generateName: 'csr-' };
    m.spec.username = 'forged';
    const created = await csrs.create(m, { name: 'system:node:n1', groups: ['system:nodes'] });
    assert.match(created.metadata.name, /^csr-[bcdfghjklmnpqrstvwxz2456789]{5}$/);
    assert.equal(created.spec.username, 'system:node:n1');
    assert.deepEqual(created.spec.groups, ['system:nodes']);
  });

  it('controller helpers: decide, setCertificate, fail; watch from a revision sees each change and the delete', async () => {
    const created = await csrs.create(manifest('r2'), ADMIN);
    const seen: ObjectEvent<CertificateSigningRequest>[] = [];
    const w = await csrs.watch(BigInt(created.metadata.resourceVersion!) - 1n, (ev) => {
      if (ev.object.metadata.name === 'r2') seen.push(ev);
    });
    try {
      const approved = await csrs.decide('r2', 'Approved', 'AutoApproved', 'node bootstrap');
      assert.equal(approved.status!.conditions![0].type, 'Approved');
      const chain = c.ca.issue('r2-cert', { cn: 'system:node:n1', o: 'system:nodes', eku: ['clientAuth'] }).cert;
      const issued = await csrs.setCertificate('r2', chain);
      assert.equal(Buffer.from(issued.status!.certificate!, 'base64').toString(), chain);
      await assert.rejects(csrs.setCertificate('r2', chain + chain), /may not modify existing certificate/);
      await csrs.delete('r2');
      await waitFor('four events', () => seen.length >= 4 || undefined, 10_000);
      assert.deepEqual(seen.map((e) => e.type), ['ADDED', 'MODIFIED', 'MODIFIED', 'DELETED']);
      assert.ok(seen[3].object.status?.certificate, 'DELETED carries the last state');
      assert.equal(seen[3].object.metadata.resourceVersion, seen[3].revision.toString());
    } finally {
      await w.cancel();
    }
    await csrs.create(manifest('r3'), ADMIN);
    const failed = await csrs.fail('r3', 'SignerRefused', 'the CA refused: subject not allowed');
    assert.deepEqual(failed.status!.conditions!.map((x) => x.type), ['Failed']);
    await assert.rejects(csrs.decide('r3', 'Approved', 'x', 'y').then(() => csrs.setCertificate('r3', c.admin.cert)), /denied or failed/);
  });

  it('the node registry keeps status on main-resource updates', async () => {
    const nodes = new NodeRegistry(c.store);
    const n = await nodes.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'reg-n' }, status: { addresses: [{ type: 'InternalIP', address: '10.0.0.9' }] } });
    const u = await nodes.update({ ...n, spec: { unschedulable: true }, status: {} });
    assert.equal(u.spec?.unschedulable, true);
    assert.equal(u.status?.addresses?.[0].address, '10.0.0.9');
    const s = await nodes.updateStatus({ ...u, status: { addresses: [{ type: 'InternalIP', address: '10.0.0.10' }] } });
    assert.equal(s.status?.addresses?.[0].address, '10.0.0.10');
    await assert.rejects(nodes.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'reg-n' } }), /already exists/);
  });

  it('bootstrap tokens are stored hashed, never the secret', async () => {
    const t = await createBootstrapToken(c.store, { pool: 'p', ttlSeconds: 600 });
    assert.match(t.token, /^[a-z0-9]{6}\.[a-z0-9]{16}$/);
    const secret = t.token.split('.')[1];
    const kv = await c.store.get(`/registry/bootstraptokens/${t.id}`);
    assert.ok(kv);
    assert.ok(!kv.value.toString().includes(secret), 'the secret is not in the store');
    assert.ok((await listBootstrapTokens(c.store)).some((x) => x.id === t.id && x.pool === 'p'));
    assert.ok(await authenticateBootstrapToken(c.store, t.token));
    assert.equal(await authenticateBootstrapToken(c.store, `${t.id}.${'a'.repeat(16)}`), null);
    await assert.rejects(createBootstrapToken(c.store, { pool: 'Not_A_Pool', ttlSeconds: 60 }), /not a DNS label/);
  });

  it('watch over HTTP: Table events (headers once), ADDED for existing objects without resourceVersion, only own objects for a token', async () => {
    const t = await createBootstrapToken(c.store, { pool: 'p', ttlSeconds: 600 });
    const table = watchHttp(c, c.admin, `${CSRS}?watch=true`, 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json');
    const mine = watchHttp(c, { token: t.token }, `${CSRS}?watch=1`);
    try {
      assert.equal(await table.status, 200);
      assert.equal(await mine.status, 200);
      await waitFor('the existing objects as ADDED', () => table.events.length >= 3 || undefined, 10_000);
      assert.ok(table.events[0].object.columnDefinitions.length === 6);
      assert.equal(table.events[1].object.columnDefinitions, undefined);
      assert.ok(table.events.every((e) => e.type === 'ADDED' && e.object.kind === 'Table' && e.object.rows.length === 1));
      const r = await call(c, { token: t.token }, 'POST', CSRS, { body: csrManifest('from-token', pem) });
      assert.equal(r.status, 201);
      await waitFor('the token to see its CSR', () => mine.events.some((e) => e.object.metadata.name === 'from-token') || undefined, 10_000);
      await waitFor('the admin table to see it', () => table.events.some((e) => e.object.rows[0].cells[0] === 'from-token') || undefined, 10_000);
      assert.deepEqual(mine.events.map((e) => e.object.metadata.name), ['from-token'], 'a token sees only its own CSRs');
    } finally {
      table.stop();
      mine.stop();
    }
  });

  it('watch from a compacted revision gets 410 Expired; close() ends open watches', async () => {
    const other = await startTestCluster({ compaction: { intervalMs: 50, retainRevisions: 2 } });
    try {
      for (let i = 0; i < 5; i++) assert.equal((await call(other, other.admin, 'POST', CSRS, { body: csrManifest(`c${i}`, pem) })).status, 201);
      await waitFor('the store to compact revision 2', async () => {
        try {
          await other.store.getPrefix('/registry/', { revision: 2n });
          return undefined;
        } catch {
          return true;
        }
      }, 10_000);
      const old = watchHttp(other, other.admin, `${CSRS}?watch=true&resourceVersion=1`);
      const code = await old.status;
      if (code === 200) {
        await waitFor('an ERROR event', () => old.events.length > 0 || undefined, 5000);
        assert.equal(old.events[0].type, 'ERROR');
        assert.equal(old.events[0].object.code, 410);
      } else {
        assert.equal(code, 410);
      }
      old.stop();
      const k = await other.kubectl(other.kubeconfig(other.admin), ['get', '--raw', `${CSRS}?watch=true&resourceVersion=1`, '--request-timeout=5s']);
      assert.match(k.stderr + k.stdout, /Expired.*too old resource version|"code":410/);

      const live = watchHttp(other, other.admin, `${CSRS}?watch=true`);
      assert.equal(await live.status, 200);
      await other.stop();
      await waitFor('the watch to end on close()', () => live.ended() || undefined, 5000);
    } finally {
      await other.stop();
    }
  });
});
