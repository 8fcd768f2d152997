// TLS and certificate authentication: old protocol versions, foreign CAs, wrong purposes, expiry by the clock, CA and cert reloads.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { parseMinVersion } from '../../src/tls/policy.js';
import { ManualClock } from '../../src/util/clock.js';
import { makeOpensslCa, type OpensslCa } from '../helpers/openssl-certs.js';
import { assertFloor, sClient } from '../helpers/tls-floor.js';
import { call, startTestCluster, type TestCluster } from './harness.js';

/** GET over a given agent (a kept-alive connection). */
function getWith(agent: Agent, url: string, path: string): Promise<{ status: number; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, url), { agent, headers: { Accept: 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('TLS and client certificates', () => {
  let c: TestCluster;
  let foreign: OpensslCa;
  // An hour ahead: certificates openssl issues during the test (notBefore = now) are already valid by this clock.
  const clock = new ManualClock(Date.now() + 3600_000);

  before(async () => {
    c = await startTestCluster({ clock });
    foreign = makeOpensslCa('another cluster root CA', mkdtempSync(join(c.dir, 'foreign-ca-')));
  });
  after(async () => {
    await c?.stop();
  });

  // In this process Node's own floor (TLS 1.2) refuses old versions too; the project's floor alone is tested below.
  it('TLS 1.0 and 1.1 are refused with a protocol version alert; 1.2 and 1.3 work', async () => {
    for (const v of ['-tls1', '-tls1_1']) {
      // SECLEVEL=0 lets this openssl offer the old version at all, so the refusal is the server's.
      const r = await sClient(c.api.port, [v, '-cipher', 'DEFAULT@SECLEVEL=0']);
      assert.notEqual(r.status, 0, `${v} was accepted`);
      assert.match(r.output, /alert protocol version/, r.output);
    }
    for (const v of ['-tls1_2', '-tls1_3']) {
      const r = await sClient(c.api.port, [v, '-CAfile', c.ca.certFile]);
      assert.equal(r.status, 0, r.output);
      assert.match(r.output, /Verify return code: 0 \(ok\)/);
    }
  });

  it('a client certificate from an unknown CA is refused, even with the admin\'s name', async () => {
    const impostor = foreign.issue('impostor', { cn: 'admin', o: 'system:masters', eku: ['clientAuth'] });
    const r = await call(c, impostor, 'GET', '/apis/certificates.k8s.io/v1/certificatesigningrequests');
    assert.equal(r.status, 401);
    assert.equal(r.json.reason, 'Unauthorized');
    const k = await c.kubectl(c.kubeconfig(impostor), ['get', 'csr']);
    assert.notEqual(k.status, 0);
    assert.match(k.stderr, /You must be logged in to the server/);
  });

  it('a certificate without clientAuth is refused', async () => {
    const server = c.ca.issue('server-only', { cn: 'admin', o: 'system:masters', eku: ['serverAuth'] });
    assert.equal((await call(c, server, 'GET', '/version')).status, 401);
  });

  it('setClientCa takes effect on new connections and on the next request of open ones', async () => {
    const other = makeOpensslCa('rotated root CA', mkdtempSync(join(c.dir, 'rotated-ca-')));
    const admin2 = other.issue('admin2', { cn: 'admin2', o: 'system:masters', eku: ['clientAuth'] });
    const path = '/api/v1/nodes';
    assert.equal((await call(c, c.admin, 'GET', path)).status, 200);
    assert.equal((await call(c, admin2, 'GET', path)).status, 401);

    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: c.ca.cert, cert: c.admin.cert, key: c.admin.key });
    try {
      assert.equal((await getWith(agent, c.api.url, path)).status, 200);
      c.api.setClientCa(other.cert);
      assert.equal((await call(c, admin2, 'GET', path)).status, 200, 'the new CA is trusted on a new connection');
      assert.equal((await call(c, c.admin, 'GET', path)).status, 401, 'the old CA is not');
      const kept = await getWith(agent, c.api.url, path);
      assert.equal(kept.reused, true);
      assert.equal(kept.status, 401, 'a kept-alive connection is judged again against the new CA');

      c.api.setClientCa(c.ca.cert + other.cert);
      assert.equal((await call(c, c.admin, 'GET', path)).status, 200);
      assert.equal((await call(c, admin2, 'GET', path)).status, 200);
      assert.throws(() => c.api.setClientCa('not a certificate'), /PEM/);
      assert.equal((await call(c, admin2, 'GET', path)).status, 200, 'a rejected bundle changes nothing');
    } finally {
      agent.destroy();
      c.api.setClientCa(c.ca.cert);
    }
  });

  it('setServingCert: new connections get the new serving certificate', async () => {
    const next = c.ca.issue('serving-2', { cn: 'kube-apiserver-2', sans: ['IP:127.0.0.1'], eku: ['serverAuth'] });
    const subjectCn = () =>
      new Promise<string>((resolve, reject) => {
        const s = connect({ host: '127.0.0.1', port: c.api.port, ca: c.ca.cert }, () => {
          const cn = s.getPeerCertificate().subject.CN;
          s.end();
          resolve(String(cn));
        });
        s.on('error', reject);
      });
    assert.equal(await subjectCn(), 'kube-apiserver');
    c.api.setServingCert({ cert: next.cert, key: next.key });
    assert.equal(await subjectCn(), 'kube-apiserver-2');
    assert.throws(() => c.api.setServingCert({ cert: next.cert, key: c.admin.key }), /cannot be used/);
    assert.equal((await call(c, c.admin, 'GET', '/version')).status, 200);
  });

  it('a client certificate past its notAfter (by the injected clock) is refused', async () => {
    assert.equal((await call(c, c.admin, 'GET', '/version')).status, 200);
    clock.advance(8 * 24 * 3600 * 1000); // the openssl leaves live 7 days
    try {
      assert.equal((await call(c, c.admin, 'GET', '/version')).status, 401);
    } finally {
      clock.advance(-8 * 24 * 3600 * 1000);
    }
  });
});

describe('API server TLS floor, with Node\'s own floor lowered to TLS 1.0 in the server\'s process', () => {
  it('the default floor: TLS 1.0 and 1.1 get a protocol_version alert; 1.2 and 1.3 are served', () =>
    assertFloor({ server: 'apiserver' }, ['TLSv1', 'TLSv1.1'], ['TLSv1.2', 'TLSv1.3'], []));

  it('minVersion TLSv1.3: a TLS 1.2 client gets a protocol_version alert; 1.3 is served', () =>
    assertFloor({ server: 'apiserver', minVersion: 'TLSv1.3' }, ['TLSv1.2'], ['TLSv1.3'], []));
});

describe('parseMinVersion: the --tls-min-version value of serve, ca serve and store serve', () => {
  it('accepts 1.2 and 1.3 however they are spelled, and defaults to 1.2', () => {
    for (const v of [undefined, '', '1.2', 'TLSv1.2', 'tlsv1.2', 'TLS1.2', ' 1.2 ']) assert.equal(parseMinVersion(v), 'TLSv1.2', String(v));
    for (const v of ['1.3', 'TLSv1.3', 'tls1.3', 'TLSV1.3']) assert.equal(parseMinVersion(v), 'TLSv1.3', v);
  });

  it('refuses every spelling of TLS 1.0 and 1.1 (and anything it does not know) with the reason and what to use', () => {
    const refused = ['1.0', '1.1', 'TLSv1', 'TLSv1.0', 'TLSv1.1', 'tls1', 'tls1.1', '1', 'TLSv1_1', 'SSLv3', 'v1.2', '1.2.0', '12', '1.4', 'TLSv1.2,TLSv1.0', 'default'];
    for (const v of refused) {
      assert.throws(
        () => parseMinVersion(v),
        (e: Error & { reason?: string; hint?: string }) => {
          assert.equal(e.reason, 'Invalid', v);
          assert.equal(e.message, `TLS minimum version "${v}" is not allowed`);
          assert.match(e.hint ?? '', /use 1\.2 or 1\.3/);
          return true;
        },
        `"${v}" was accepted`,
      );
    }
  });
});
