// The record of observed clients: one entry per user, issuing key and server kind; seen again, it moves forward; bounded,
// with nodes apart so that many nodes cannot push people out; what a certificate yields (CN, O, its issuer's key id).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { localCredential } from '../../src/ca/credential.js';
import { parseCertificates } from '../../src/pki/index.js';
import { clientIdentityOf, ObservedClients, plainAddress, type ClientIdentity } from '../../src/tls/observed-clients.js';
import { startTestCa, type TestCa } from '../ca/helpers.js';

const who = (user: string, issuerKeyId = 'aa', groups: string[] = ['system:masters']): ClientIdentity => ({ user, groups, issuerKeyId });

describe('ObservedClients', () => {
  it('keeps one entry per user, issuing key and server kind; a new sighting moves time and address forward, never back', () => {
    const o = new ObservedClients();
    o.see(who('admin'), 'apiserver', '127.0.0.1', 1000);
    o.see(who('admin'), 'apiserver', '127.0.0.2', 3000);
    o.see(who('admin'), 'apiserver', '127.0.0.3', 2000); // an older time (a clock stepped back) does not rewind it
    o.see(who('admin', 'bb'), 'apiserver', '127.0.0.1', 1500);
    o.see(who('admin'), 'etcd', '127.0.0.1', 1200);
    const list = o.list();
    assert.equal(list.length, 3);
    const a = list.find((s) => s.issuerKeyId === 'aa' && s.server === 'apiserver')!;
    assert.equal(a.lastSeenMs, 3000);
    assert.equal(a.address, '127.0.0.3');
    assert.deepEqual(
      list.map((s) => `${s.user}/${s.issuerKeyId}/${s.server}`).sort(),
      ['admin/aa/apiserver', 'admin/aa/etcd', 'admin/bb/apiserver'],
    );
  });

  it('is bounded: the least recently seen goes first, and nodes never push people or components out', () => {
    const o = new ObservedClients({ nodes: 3, others: 2 });
    o.see(who('alice'), 'apiserver', '', 1);
    o.see(who('bob'), 'apiserver', '', 2);
    o.see(who('alice'), 'apiserver', '', 3); // alice is now the most recently seen
    o.see(who('carol'), 'apiserver', '', 4); // bob goes
    for (let i = 0; i < 10; i++) o.see(who(`system:node:n${i}`, 'aa', ['system:nodes']), 'tunnel', '', 10 + i);
    const users = o.list().map((s) => s.user);
    assert.deepEqual(users.filter((u) => !u.startsWith('system:node:')).sort(), ['alice', 'carol']);
    assert.deepEqual(users.filter((u) => u.startsWith('system:node:')).sort(), ['system:node:n7', 'system:node:n8', 'system:node:n9']);
    assert.equal(o.size, 5);
  });

  it('hands out copies: changing a listed entry does not change the record', () => {
    const o = new ObservedClients();
    o.see(who('admin'), 'apiserver', '127.0.0.1', 1);
    o.list()[0].groups.push('x');
    o.list()[0].lastSeenMs = 99;
    assert.deepEqual(o.list()[0].groups, ['system:masters']);
    assert.equal(o.list()[0].lastSeenMs, 1);
  });

  it('plain addresses: an IPv4 client on a dual-stack socket is shown as IPv4', () => {
    assert.equal(plainAddress('::ffff:127.0.0.1'), '127.0.0.1');
    assert.equal(plainAddress('::1'), '::1');
    assert.equal(plainAddress(undefined), '');
  });
});

describe('clientIdentityOf (a certificate from the real CA service)', () => {
  let ca: TestCa;
  before(async () => {
    ca = await startTestCa();
    await ca.fleet.createCluster({ name: 'obs' });
  });
  after(async () => ca?.stop());

  it("yields CN, O and the issuing generation's subject key id, and nothing else", async () => {
    const c = await localCredential([{ type: 'O', value: 'system:masters' }, { type: 'CN', value: 'ops-alice' }], (csr) =>
      ca.fleet.sign('obs', { signer: 'kubernetes.io/kube-apiserver-client', csr, admin: true }),
    );
    const leaf = parseCertificates(c.cert)[0];
    const view = await ca.fleet.describeCluster('obs');
    const g1 = parseCertificates(view.authorities.find((a) => a.kind === 'root')!.generations[0].certificate!)[0];
    const id = clientIdentityOf(leaf)!;
    assert.deepEqual(id, { user: 'ops-alice', groups: ['system:masters'], issuerKeyId: g1.subjectKeyId!.toString('hex') });
    assert.deepEqual(Object.keys(id).sort(), ['groups', 'issuerKeyId', 'user'], 'no key material, no certificate');
  });
});
