// The listener guard on bare servers: handshake deadlines against slowloris, idle closes on HTTP/1.1 and HTTP/2, caps per source, per listener and per process, rate-limited lines.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { connect as netConnect, type Server, type Socket } from 'node:net';
import { request as httpsRequest, Agent } from 'node:https';
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import { ListenerGuard, limitsFromEnvironment, type ConnectionBudget, type ConnectionLimits } from '../../src/tls/listener-guard.js';
import { serverOptions } from '../../src/tls/policy.js';
import { waitFor } from '../../src/util/wait.js';
import { fdCount, openFlood } from '../helpers/flood.js';
import { makeOpensslCa, type OpensslCa, type PemPair } from '../helpers/openssl-certs.js';

let ca: OpensslCa;
let serving: PemPair;

before(() => {
  ca = makeOpensslCa('guard test CA');
  serving = ca.issue('server', { cn: 'localhost', sans: ['IP:127.0.0.1', 'DNS:localhost'], eku: ['serverAuth'] });
});

interface Lines {
  lines: Array<{ msg: string; fields: Record<string, unknown> }>;
  log: (msg: string, fields: Record<string, unknown>) => void;
}
const lines = (): Lines => {
  const l: Lines = { lines: [], log: (msg, fields) => l.lines.push({ msg, fields }) };
  return l;
};

async function listen(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.address() as { port: number }).port;
}

/** A TLS listener whose secure connections are kept by the owner (as the tunnel and the store do). */
async function tlsListener(limits: ConnectionLimits, o: { budget?: ConnectionBudget } = {}) {
  const l = lines();
  const guard = new ListenerGuard({ name: 'test listener', limits, tls: true, requests: 'none', log: l.log, budget: o.budget });
  const server = createTlsServer({ ...serverOptions({ cert: serving.cert, key: serving.key, ca: ca.cert, clientCert: 'none' }), handshakeTimeout: guard.limits.handshakeTimeoutMs }, () => undefined);
  guard.attach(server);
  const port = await listen(server);
  return {
    guard,
    port,
    log: l,
    close: () =>
      new Promise<void>((r) => {
        guard.destroyAll();
        server.close(() => r());
      }),
  };
}

function idleConnections(port: number, n: number): Promise<Socket[]> {
  return Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<Socket>((resolve) => {
          const s = netConnect({ host: '127.0.0.1', port }, () => resolve(s));
          s.on('error', () => undefined);
        }),
    ),
  );
}

const closed = (s: Socket) => s.destroyed || s.readyState === 'closed';

describe('listener guard', () => {
  test('handshakes have a deadline: idle, partial, slow (a byte every 100 ms), half-open and closed connections all go, and no descriptor stays', async () => {
    const l = await tlsListener({ handshakeTimeoutMs: 700 });
    try {
      const before = fdCount();
      const flood = await openFlood('127.0.0.1', l.port, { idle: 300, partialHello: 200, slowHello: 100, halfOpen: 100, closed: 100, dripMs: 100 });
      // The slow ones keep sending: the deadline counts from accept, whatever arrives.
      await waitFor('the server to close every connection that did not finish its handshake', () => flood.closedByPeer() >= flood.expectPeerClose, 20_000);
      assert.equal(flood.open(), 0);
      await waitFor('the guard to count no open connection', () => l.guard.stats().open === 0, 5_000);
      await waitFor('descriptors back to where they were', () => fdCount() <= before + 5, 5_000);
      assert.ok(l.guard.stats().events['handshake-timeout'] >= 500, JSON.stringify(l.guard.stats()));
      assert.ok(l.log.lines.some((x) => /did not finish its TLS handshake within 700 ms/.test(x.msg)), JSON.stringify(l.log.lines));
      // One line for the whole burst, not one per connection.
      assert.ok(l.log.lines.filter((x) => x.fields.event === 'handshake-timeout').length <= 2, JSON.stringify(l.log.lines));
    } finally {
      await l.close();
    }
  });

  test('per-source cap applies to loopback only when asked; the refused are closed at once and the cap is logged once', async () => {
    const exempt = await tlsListener({ maxPerSource: 3, handshakeTimeoutMs: 20_000 });
    const limited = await tlsListener({ maxPerSource: 3, limitLoopback: true, handshakeTimeoutMs: 20_000 });
    try {
      const a = await idleConnections(exempt.port, 8);
      await waitFor('all 8 loopback connections held', () => exempt.guard.stats().open === 8, 5_000);
      const b = await idleConnections(limited.port, 8);
      await waitFor('5 of 8 refused', () => b.filter(closed).length === 5, 5_000);
      assert.equal(limited.guard.stats().open, 3);
      assert.equal(limited.guard.stats().events['source-cap'], 5);
      assert.equal(a.filter(closed).length, 0);
      const capLines = limited.log.lines.filter((x) => x.fields.event === 'source-cap');
      assert.equal(capLines.length, 1, JSON.stringify(limited.log.lines));
      assert.match(capLines[0].msg, /source already holds 3 connections \(maxPerSource\)/);
      assert.equal(capLines[0].fields.remote, '127.0.0.1');
      // A freed slot is usable again.
      b.find((s) => !closed(s))!.destroy();
      await waitFor('a slot freed', () => limited.guard.stats().open === 2, 5_000);
      const [c] = await idleConnections(limited.port, 1);
      await waitFor('the new connection held', () => limited.guard.stats().open === 3, 5_000);
      assert.ok(!closed(c));
      for (const s of [...a, ...b, c]) s.destroy();
    } finally {
      await exempt.close();
      await limited.close();
    }
  });

  test('listener cap and process budget refuse what is over them, with the cap named', async () => {
    const budget: ConnectionBudget = { limit: 4, open: 0 };
    const capped = await tlsListener({ maxConnections: 2, handshakeTimeoutMs: 20_000 });
    const x = await tlsListener({ handshakeTimeoutMs: 20_000 }, { budget });
    const y = await tlsListener({ handshakeTimeoutMs: 20_000 }, { budget });
    try {
      const a = await idleConnections(capped.port, 5);
      await waitFor('3 of 5 refused by the listener cap', () => a.filter(closed).length === 3, 5_000);
      assert.equal(capped.guard.stats().events['listener-cap'], 3);
      assert.match(capped.log.lines[0].msg, /already holds 2 connections \(maxConnections\)/);
      // Two listeners share one process budget of 4.
      const b = await idleConnections(x.port, 3);
      const c = await idleConnections(y.port, 3);
      await waitFor('2 of 6 refused by the process budget', () => [...b, ...c].filter(closed).length === 2, 5_000);
      assert.equal(x.guard.stats().open + y.guard.stats().open, 4);
      assert.equal(y.guard.stats().events['process-cap'], 2);
      assert.match(y.log.lines[0].msg, /the process holds 4 connections/);
      for (const s of [...a, ...b, ...c]) s.destroy();
      await waitFor('the budget released', () => budget.open === 0, 5_000);
    } finally {
      await capped.close();
      await x.close();
      await y.close();
    }
  });

  describe('HTTP idle time', () => {
    let server: http2.Http2SecureServer;
    let guard: ListenerGuard;
    let port: number;
    const streaming = new Set<http2.Http2ServerResponse>();
    before(async () => {
      guard = new ListenerGuard({ name: 'http test', limits: { idleTimeoutMs: 600, headersTimeoutMs: 600, requestTimeoutMs: 800 }, tls: true, requests: 'http', log: () => undefined });
      server = http2.createSecureServer({ ...serverOptions({ cert: serving.cert, key: serving.key, ca: ca.cert, clientCert: 'none' }), ...guard.serverOptions(), allowHTTP1: true }, (req, res) => {
        if (req.url === '/stream') {
          // A watch: headers now, then nothing for a long time.
          res.writeHead(200);
          res.write('{}\n');
          streaming.add(res);
          return;
        }
        if (req.url === '/upload') {
          req.resume();
          req.on('end', () => res.end('uploaded'));
          return;
        }
        res.end('ok');
      });
      guard.attach(server);
      port = await listen(server as unknown as Server);
    });
    after(async () => {
      for (const r of streaming) r.end();
      guard.destroyAll();
      await new Promise<void>((r) => server.close(() => r()));
    });

    test('an HTTP/1.1 connection idle between requests, and one dripping its headers, are closed', async () => {
      const agent = new Agent({ keepAlive: true, ca: ca.cert });
      let socket: Socket | undefined;
      await new Promise<void>((resolve, reject) => {
        const req = httpsRequest({ host: '127.0.0.1', port, path: '/', agent, servername: 'localhost' }, (res) => {
          socket = res.socket;
          res.resume();
          res.on('end', () => resolve());
        });
        req.on('error', reject);
        req.end();
      });
      assert.ok(socket);
      const flood = await openFlood('127.0.0.1', port, { partialHeaders: 20, dripMs: 100, tls: { ca: ca.cert, servername: 'localhost' } });
      await waitFor('the kept-alive socket closed by the server', () => socket!.destroyed, 10_000);
      await waitFor('the slow-header connections closed by the server', () => flood.closedByPeer() === flood.expectPeerClose, 10_000);
      agent.destroy();
    });

    test('an HTTP/1.1 request whose body trickles in is cut off at the request timeout', async () => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca: ca.cert, servername: 'localhost', ALPNProtocols: ['http/1.1'] });
      s.on('error', () => undefined);
      let answer = '';
      s.on('data', (d: Buffer) => (answer += d.toString()));
      await new Promise((r) => s.once('secureConnect', r));
      s.write('POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n');
      const drip = setInterval(() => s.write('x'), 100);
      try {
        await waitFor('the server to cut the slow request off', () => s.destroyed || s.readyState === 'closed' || s.readableEnded, 10_000);
      } finally {
        clearInterval(drip);
        s.destroy();
      }
      assert.equal(answer, '', 'the handler never saw the whole body, so nothing was answered');
      assert.ok(guard.stats().events['request-timeout'] >= 1);
    });

    test('an HTTP/2 request whose body trickles in is cancelled at the request timeout', async () => {
      const session = http2.connect(`https://127.0.0.1:${port}`, { ca: ca.cert, servername: 'localhost' });
      session.on('error', () => undefined);
      const before = guard.stats().events['request-timeout'];
      const req = session.request({ ':method': 'POST', ':path': '/upload' });
      req.on('error', () => undefined);
      const drip = setInterval(() => req.write('x'), 100);
      try {
        await waitFor('the stream to be cancelled by the server', () => req.rstCode === http2.constants.NGHTTP2_CANCEL || req.destroyed, 10_000);
      } finally {
        clearInterval(drip);
        session.destroy();
      }
      assert.equal(guard.stats().events['request-timeout'], before + 1);
    });

    test('an HTTP/2 session with no stream is closed; one carrying a streamed response is not', async () => {
      const opts = { ca: ca.cert, servername: 'localhost' };
      const busy = http2.connect(`https://127.0.0.1:${port}`, opts);
      busy.on('error', () => undefined);
      const stream = busy.request({ ':path': '/stream' });
      stream.on('error', () => undefined);
      await new Promise((r) => stream.once('data', r));
      const idle = http2.connect(`https://127.0.0.1:${port}`, opts);
      idle.on('error', () => undefined);
      await new Promise((r) => idle.once('connect', r));
      const goaway = new Promise((r) => idle.once('goaway', r));
      await waitFor('the idle session to be closed', () => idle.closed || idle.destroyed, 10_000);
      await goaway;
      assert.equal(busy.closed || busy.destroyed, false, 'the session with a stream in flight must stay');
      stream.close();
      busy.close();
    });
  });

  test('TRUSTPLANE_CONNECTION_LIMITS is parsed strictly', () => {
    assert.deepEqual(limitsFromEnvironment({ TRUSTPLANE_CONNECTION_LIMITS: '{"handshakeTimeoutMs":500,"limitLoopback":true}' }), { handshakeTimeoutMs: 500, limitLoopback: true });
    assert.deepEqual(limitsFromEnvironment({}), {});
    assert.throws(() => limitsFromEnvironment({ TRUSTPLANE_CONNECTION_LIMITS: '{"handshake":1}' }), /unknown field "handshake"/);
    assert.throws(() => limitsFromEnvironment({ TRUSTPLANE_CONNECTION_LIMITS: '{"maxPerSource":-1}' }), /maxPerSource must be a positive number/);
    assert.throws(() => limitsFromEnvironment({ TRUSTPLANE_CONNECTION_LIMITS: 'nope' }), /is not JSON/);
  });
});
