// Transport security of the store server: client certificates required from the right CA, TLS 1.2 at the least.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { assertFloor } from '../../helpers/tls-floor.js';
import { b, makePki, rawClient, removeDir, startTestStore, type Pki, type TestStore } from './helpers.js';

/** openssl s_client against the store; resolves with its exit code and everything it printed. */
function sClient(port: number, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...args], { timeout: 10000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}\n${stderr}` });
    });
    child.stdin?.end('Q\n');
  });
}

/** A Node TLS client: resolves with the error the server's refusal produced (or undefined if the connection held). */
function tlsRefusal(port: number, opts: { ca: string; cert?: string; key?: string; maxVersion?: 'TLSv1.2' | 'TLSv1.3' }): Promise<Error | undefined> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port, ca: opts.ca, cert: opts.cert, key: opts.key, maxVersion: opts.maxVersion, ALPNProtocols: ['h2'] });
    const timer = setTimeout(() => {
      s.destroy();
      resolve(undefined);
    }, 700);
    s.on('error', (e) => {
      clearTimeout(timer);
      resolve(e);
    });
    // A certificate that fails verification completes the TLS exchange, then the server drops the connection
    // before any application data: the socket closes under us.
    s.on('close', () => {
      clearTimeout(timer);
      resolve(new Error('connection closed by the server'));
    });
    // With TLS 1.3 the client finishes first; the refusal arrives as an alert on the first read.
    s.on('secureConnect', () => s.write(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')));
  });
}

describe('store server TLS', () => {
  let t: TestStore;
  let other: Pki;
  before(async () => {
    t = await startTestStore();
    other = makePki('another CA');
  });
  after(async () => {
    await t.close();
    removeDir(t.dir);
  });

  it('serves a client with a certificate from its CA', async () => {
    const r = await t.client.put({ key: b('tls'), value: b('ok') });
    assert.ok(Number(r.header.revision) > 1);
    const ok = await tlsRefusal(t.server.port, { ca: t.pki.ca.cert, cert: t.pki.client.cert, key: t.pki.client.key });
    assert.equal(ok, undefined);
  });

  it('refuses clients without a certificate at the handshake (TLS 1.2 and 1.3)', async () => {
    for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
      const e = await tlsRefusal(t.server.port, { ca: t.pki.ca.cert, maxVersion });
      assert.ok(e, `${maxVersion}: connection without a client certificate was not refused`);
      assert.match((e as NodeJS.ErrnoException).code ?? e.message, /ALERT|HANDSHAKE|CERTIFICATE|ECONNRESET|closed/i);
    }
    const noCert = rawClient(t.server.endpoint, { ca: t.pki.ca.cert });
    const err = await noCert.error(noCert.range({ key: b('tls') })).finally(() => noCert.close());
    assert.equal(err.code, status.UNAVAILABLE);
  });

  it('refuses a client certificate from another CA', async () => {
    const e = await tlsRefusal(t.server.port, { ca: t.pki.ca.cert, cert: other.client.cert, key: other.client.key });
    assert.ok(e, 'a certificate from another CA was accepted');
    const foreign = rawClient(t.server.endpoint, { ca: t.pki.ca.cert, cert: other.client.cert, key: other.client.key });
    const err = await foreign.error(foreign.range({ key: b('tls') })).finally(() => foreign.close());
    assert.equal(err.code, status.UNAVAILABLE);
  });

  // In this process Node's own floor (TLS 1.2) refuses TLS 1.1 too; the project's floor alone is tested below.
  it('answers TLS 1.1 with a protocol_version alert; TLS 1.2 with a certificate negotiates', async () => {
    const certArgs = ['-cert', t.pki.client.certFile, '-key', t.pki.client.keyFile, '-CAfile', t.pki.ca.certFile];
    // SECLEVEL=0 lets openssl itself offer TLS 1.1, so the refusal is the server's.
    const old = await sClient(t.server.port, ['-tls1_1', '-cipher', 'DEFAULT:@SECLEVEL=0', ...certArgs]);
    assert.notEqual(old.code, 0);
    assert.match(old.out, /alert protocol version/);
    const v12 = await sClient(t.server.port, ['-tls1_2', '-alpn', 'h2', ...certArgs]);
    assert.match(v12.out, /Protocol\s*: TLSv1\.2/);
    assert.match(v12.out, /Verify return code: 0 \(ok\)/);
  });

  it('with minVersion TLSv1.3, refuses TLS 1.2', async () => {
    const strict = await startTestStore({ pki: t.pki, tls: { cert: t.pki.server.cert, key: t.pki.server.key, ca: t.pki.ca.cert, minVersion: 'TLSv1.3' } });
    try {
      const certArgs = ['-cert', t.pki.client.certFile, '-key', t.pki.client.keyFile, '-CAfile', t.pki.ca.certFile];
      const v12 = await sClient(strict.server.port, ['-tls1_2', ...certArgs]);
      assert.match(v12.out, /alert protocol version/);
      await strict.client.put({ key: b('v13'), value: b('ok') });
    } finally {
      await strict.close();
      removeDir(strict.dir);
    }
  });
});

describe('store server TLS floor, with Node\'s own floor lowered to TLS 1.0 in the server\'s process', () => {
  it('the default floor: TLS 1.0 and 1.1 get a protocol_version alert; 1.2 with a certificate negotiates', () =>
    assertFloor({ server: 'store' }, ['TLSv1', 'TLSv1.1'], ['TLSv1.2'], ['-alpn', 'h2']));

  it('minVersion TLSv1.3: a TLS 1.2 client gets a protocol_version alert; 1.3 negotiates', () =>
    assertFloor({ server: 'store', minVersion: 'TLSv1.3' }, ['TLSv1.2'], ['TLSv1.3'], ['-alpn', 'h2']));
});

describe('store server start-up refusals', () => {
  it('a second server on the same database or port is refused with a reason', async () => {
    const first = await startTestStore();
    try {
      await assert.rejects(startTestStore({ pki: first.pki, dir: first.dir }), (e: Error & { reason?: string }) => {
        assert.equal(e.reason, 'Conflict');
        assert.match(e.message, /held by another running store server/);
        return true;
      });
      await assert.rejects(startTestStore({ pki: first.pki, dbPath: `${first.dir}/other.db`, dir: first.dir, port: first.server.port }), /already in use/);
      // The refused attempts left the first server serving.
      await first.client.put({ key: b('still'), value: b('here') });
    } finally {
      await first.close();
      removeDir(first.dir);
    }
  });
});
