// The :authority rewriter: URL authorities (older etcdctl 3.4 builds send "https://host:port") reach the server.
import assert from 'node:assert/strict';
import { connect, constants } from 'node:http2';
import { describe, it } from 'node:test';
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { AuthorityNormalizingSocket, AuthorityRewriter, HeaderBlockFixer, saneAuthority } from '../../../src/store/server/authority-filter.js';
import { admitConnection } from '../../../src/store/server/connection-intake.js';
import { HUFFMAN_CODES, HUFFMAN_LENGTHS } from '../../../src/store/server/hpack-tables.js';
import { removeDir, startTestStore, type TestStore } from './helpers.js';

function huffman(s: string): Buffer {
  const out: number[] = [];
  let acc = 0n;
  let bits = 0;
  for (const c of Buffer.from(s)) {
    acc = (acc << BigInt(HUFFMAN_LENGTHS[c])) | BigInt(HUFFMAN_CODES[c]);
    bits += HUFFMAN_LENGTHS[c];
    while (bits >= 8) {
      out.push(Number((acc >> BigInt(bits - 8)) & 0xffn));
      bits -= 8;
    }
  }
  if (bits > 0) out.push(Number(((acc << BigInt(8 - bits)) | ((1n << BigInt(8 - bits)) - 1n)) & 0xffn));
  return Buffer.from(out);
}
const hstr = (s: string) => {
  const h = huffman(s);
  return Buffer.concat([Buffer.from([0x80 | h.length]), h]);
};
const rawStr = (s: string) => Buffer.concat([Buffer.from([s.length]), Buffer.from(s)]);
const frame = (type: number, flags: number, stream: number, payload: Buffer) => {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
};

describe(':authority rewriting', () => {
  it('maps bytes nghttp2 refuses to "_" and keeps the length', () => {
    assert.equal(saneAuthority(Buffer.from('127.0.0.1:2379')), undefined);
    assert.equal(saneAuthority(Buffer.from('https://127.0.0.1:2379'))!.toString(), 'https:__127.0.0.1:2379');
  });

  it('rewrites a Huffman-coded :authority, follows the dynamic table, leaves clean blocks alone', () => {
    const fixer = new HeaderBlockFixer();
    // literal with incremental indexing, name = static 1 (:authority); then "x-a: 1" indexed as a new name.
    const block1 = Buffer.concat([Buffer.from([0x41]), hstr('https://127.0.0.1:2379'), Buffer.from([0x40]), hstr('x-a'), rawStr('1')]);
    const fixed = fixer.fix(block1)!;
    assert.deepEqual(fixed, Buffer.concat([Buffer.from([0x41]), rawStr('https:__127.0.0.1:2379'), Buffer.from([0x40]), hstr('x-a'), rawStr('1')]));
    // Indexed references to the entries added (62 = x-a, 63 = :authority) need no change.
    assert.equal(fixer.fix(Buffer.from([0x80 | 62, 0x80 | 63])), undefined);
    // A literal whose name is taken from the dynamic table (63 = :authority) is recognised as :authority.
    const viaDynamicName = Buffer.concat([Buffer.from([0x00 | 0x0f, 63 - 15]), rawStr('http://h:1')]);
    assert.deepEqual(fixer.fix(viaDynamicName), Buffer.concat([Buffer.from([0x0f, 63 - 15]), rawStr('http:__h:1')]));
    // A table size update to 0 empties the table: name index 62 no longer exists, so parsing fails (and the caller passes bytes on).
    assert.throws(() => fixer.fix(Buffer.concat([Buffer.from([0x20, 0x40 | 62]), rawStr('v')])));
  });

  it('rewrites frames split at any byte boundary, including HEADERS continued and padded', () => {
    const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    const settings = frame(0x4, 0, 0, Buffer.alloc(6));
    const block = Buffer.concat([Buffer.from([0x82, 0x41]), hstr('https://10.0.0.1:2379'), Buffer.from([0x84])]);
    const padded = Buffer.concat([Buffer.from([3]), block.subarray(0, 5), Buffer.alloc(3)]);
    const headers = frame(0x1, 0x8 /* PADDED */, 1, padded);
    const cont = frame(0x9, 0x4 /* END_HEADERS */, 1, block.subarray(5));
    const data = frame(0x0, 0x1, 1, Buffer.from('hello'));
    const input = Buffer.concat([preface, settings, headers, cont, data]);
    const fixedBlock = Buffer.concat([Buffer.from([0x82, 0x41]), rawStr('https:__10.0.0.1:2379'), Buffer.from([0x84])]);
    const expected = Buffer.concat([preface, settings, frame(0x1, 0x4, 1, fixedBlock), data]);
    for (const step of [1, 2, 7, 9, 13, input.length]) {
      const r = new AuthorityRewriter();
      const out: Buffer[] = [];
      for (let i = 0; i < input.length; i += step) out.push(...r.feed(input.subarray(i, i + step)));
      assert.deepEqual(Buffer.concat(out), expected, `chunks of ${step}`);
    }
  });

  /** A stand-in for a TLS socket: records what the intake writes and unshifts. */
  class FakeSocket extends EventEmitter {
    written: Buffer[] = [];
    unshifted: Buffer[] = [];
    paused = false;
    write(b: Buffer) {
      this.written.push(b);
      return true;
    }
    pause() {
      this.paused = true;
      return this;
    }
    resume() {
      this.paused = false;
      return this;
    }
    unshift(b: Buffer) {
      this.unshifted.push(b);
    }
    setNoDelay() {
      return this;
    }
    destroy() {
      return this;
    }
  }
  const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
  const clientSettings = frame(0x4, 0, 0, Buffer.alloc(6));
  const ack = frame(0x4, 0x1, 0, Buffer.alloc(0));
  const headersWith = (authority: string) => frame(0x1, 0x4 | 0x1, 1, Buffer.concat([Buffer.from([0x83, 0x41]), hstr(authority)]));

  it('intake: answers the preface with SETTINGS, drops the ACK, and hands plain clients the socket itself', () => {
    const s = new FakeSocket();
    let injected: Duplex | undefined;
    admitConnection(s as unknown as TLSSocket, (c) => (injected = c));
    assert.deepEqual(s.written, [Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);
    const headers = headersWith('127.0.0.1:2379');
    s.emit('data', Buffer.concat([preface, clientSettings]));
    s.emit('data', headers);
    assert.equal(injected, undefined, 'no verdict before the ACK of our SETTINGS');
    s.emit('data', Buffer.concat([ack, frame(0x0, 0x1, 1, Buffer.from('x'))]));
    assert.equal(injected, s as unknown as Duplex);
    assert.equal(s.paused, true);
    assert.deepEqual(Buffer.concat(s.unshifted), Buffer.concat([preface, clientSettings, headers, frame(0x0, 0x1, 1, Buffer.from('x'))]));
  });

  it('intake: a URL :authority sends the connection through the rewriter', () => {
    const s = new FakeSocket();
    let injected: Duplex | undefined;
    admitConnection(s as unknown as TLSSocket, (c) => (injected = c));
    s.emit('data', Buffer.concat([preface, clientSettings, ack, headersWith('https://127.0.0.1:2379')]));
    assert.ok(injected instanceof AuthorityNormalizingSocket);
    const out = injected.read() as Buffer;
    assert.deepEqual(out, Buffer.concat([preface, clientSettings, frame(0x1, 0x4 | 0x1, 1, Buffer.concat([Buffer.from([0x83, 0x41]), rawStr('https:__127.0.0.1:2379')]))]));
  });

  /** Sends Status requests with a URL :authority; resolves with each grpc-status, or "reset N". */
  async function statusCalls(t: TestStore, n: number): Promise<string[]> {
    const session = connect(t.server.endpoint, { ca: t.pki.ca.cert, cert: t.pki.client.cert, key: t.pki.client.key });
    const out: string[] = [];
    try {
      for (let i = 0; i < n; i++) {
        out.push(
          await new Promise<string>((resolve) => {
            const req = session.request({
              ':method': 'POST',
              ':path': '/etcdserverpb.Maintenance/Status',
              ':authority': `https://127.0.0.1:${t.server.port}`,
              'content-type': 'application/grpc',
              te: 'trailers',
              // Large, changing headers push older entries out of the 4 KiB dynamic table.
              [`x-churn-${i % 5}`]: 'c'.repeat(900 + i),
            });
            let trailer = 'none';
            req.on('trailers', (h) => (trailer = String(h['grpc-status'])));
            req.on('error', () => undefined);
            req.on('close', () => resolve(req.rstCode === constants.NGHTTP2_NO_ERROR ? trailer : `reset ${req.rstCode}`));
            req.resume();
            req.end(Buffer.from([0, 0, 0, 0, 0]));
          }),
        );
      }
    } finally {
      session.close();
    }
    return out;
  }

  it('serves gRPC requests whose :authority is a URL, across dynamic table evictions', async () => {
    const t = await startTestStore();
    try {
      assert.deepEqual(await statusCalls(t, 40), Array(40).fill('0'));
    } finally {
      await t.close();
      removeDir(t.dir);
    }
  });

  it('without the rewriter, Node resets those requests (the problem it solves)', async () => {
    const t = await startTestStore({}, { rewriteAuthority: false });
    try {
      assert.deepEqual(await statusCalls(t, 2), [`reset ${constants.NGHTTP2_PROTOCOL_ERROR}`, `reset ${constants.NGHTTP2_PROTOCOL_ERROR}`]);
    } finally {
      await t.close();
      removeDir(t.dir);
    }
  });
});
