// The HTTP/2 JSON server of the CA service and the fleet API under its listener guard: idle sessions are closed, and the one client carries on.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { H2JsonClient, startH2JsonServer, type RunningH2JsonServer } from '../../src/tls/h2-json.js';
import { waitFor } from '../../src/util/wait.js';
import { makeOpensslCa, type OpensslCa, type PemPair } from '../helpers/openssl-certs.js';

describe('h2 JSON server: idle sessions', () => {
  let ca: OpensslCa;
  let client: PemPair;
  let server: RunningH2JsonServer;
  let calls = 0;
  before(async () => {
    ca = makeOpensslCa('h2 json test CA');
    const serving = ca.issue('server', { cn: 'localhost', sans: ['IP:127.0.0.1'], eku: ['serverAuth'] });
    client = ca.issue('client', { cn: 'caller', eku: ['clientAuth'] });
    server = await startH2JsonServer<string>({
      host: '127.0.0.1',
      port: 0,
      cert: serving.cert,
      key: serving.key,
      clientCa: ca.cert,
      maxBodyBytes: 1024,
      service: 'test service',
      identify: (subject) => String(subject.CN),
      route: async (caller) => [200, { caller, n: ++calls }],
      limits: { idleTimeoutMs: 300 },
      log: () => undefined,
    });
  });
  after(async () => {
    await server?.close();
  });

  test('a session left idle is closed by the server; the next request of the same client opens a new one', async () => {
    const c = new H2JsonClient({ url: server.url, cert: client.cert, key: client.key, ca: ca.cert }, { name: 'test service', hint: 'is it running?' });
    try {
      assert.deepEqual(await c.request('GET', '/x'), { caller: 'caller', n: 1 });
      await waitFor('the idle session closed by the server', () => server.connectionStats().events['idle-timeout'] >= 1 && server.connectionStats().open === 0, 10_000);
      assert.deepEqual(await c.request('GET', '/x'), { caller: 'caller', n: 2 });
    } finally {
      c.close();
    }
  });

  test('a session that never sends a request is closed too', async () => {
    const s = http2.connect(server.url, { ca: ca.cert, cert: client.cert, key: client.key });
    s.on('error', () => undefined);
    await new Promise((r) => s.once('connect', r));
    await waitFor('the server to close the unused session', () => s.closed || s.destroyed, 10_000);
  });
});
