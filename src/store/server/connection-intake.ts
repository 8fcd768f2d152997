// Per connection, decides from the client's first request whether its bytes need the :authority rewriter.
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { AuthorityNormalizingSocket, HeaderBlockFixer } from './authority-filter.js';

/*
 * Most clients send a plain host:port authority; their connections go to grpc-js as the TLS socket itself, on
 * Node's native HTTP/2 path. Only a connection whose first header block holds a URL authority goes through the
 * (slower, JavaScript) rewriter. To see that first block, the intake answers the client preface with an empty
 * SETTINGS frame (grpc-go sends no request before the server's SETTINGS), reads up to the first HEADERS and the
 * client's ACK of those SETTINGS, drops that ACK (Node never sent those SETTINGS), and hands every other byte on.
 * Node's HTTP/2 session then sends its own SETTINGS, which is allowed at any time.
 */

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const EMPTY_SETTINGS = Buffer.from([0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
const TYPE_HEADERS = 0x1;
const TYPE_PRIORITY = 0x2;
const TYPE_SETTINGS = 0x4;
const TYPE_WINDOW_UPDATE = 0x8;
const TYPE_CONTINUATION = 0x9;
const FLAG_ACK = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;

type Verdict = 'native' | 'rewrite';

/**
 * Reads the start of a connection and calls `inject` once with what grpc-js should serve: the socket itself, or
 * a rewriting wrapper. Without a verdict after `timeoutMs` (an idle client) the socket goes the native way.
 */
export function admitConnection(socket: TLSSocket, inject: (conn: Duplex) => void, timeoutMs = 5000): void {
  const forwarded: Buffer[] = [];
  let buf: Buffer = Buffer.alloc(0);
  let prefaceSeen = false;
  let ackDropped = false;
  let need: Verdict | undefined;
  let fragments: Buffer[] | undefined;
  let done = false;

  const finish = (verdict: Verdict) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('close', onClose);
    const initial = Buffer.concat([...forwarded, buf]);
    if (verdict === 'native') {
      socket.pause();
      // Node's HTTP/2 session reads what is buffered in the socket before it takes the handle over.
      if (initial.length > 0) socket.unshift(initial);
      inject(socket);
    } else inject(new AuthorityNormalizingSocket(socket, initial));
  };

  const verdictOf = (block: Buffer): Verdict => {
    try {
      return new HeaderBlockFixer().fix(block) ? 'rewrite' : 'native';
    } catch {
      return 'native';
    }
  };

  const onData = (chunk: Buffer) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    if (!prefaceSeen) {
      if (buf.length < PREFACE.length) return;
      if (!buf.subarray(0, PREFACE.length).equals(PREFACE)) return finish('native');
      forwarded.push(buf.subarray(0, PREFACE.length));
      buf = buf.subarray(PREFACE.length);
      prefaceSeen = true;
    }
    while (buf.length >= 9) {
      const length = buf.readUIntBE(0, 3);
      if (buf.length < 9 + length) break;
      const frame = buf.subarray(0, 9 + length);
      buf = buf.subarray(9 + length);
      const type = frame[3];
      const flags = frame[4];
      if (type === TYPE_SETTINGS && flags & FLAG_ACK && !ackDropped) {
        ackDropped = true;
        continue;
      }
      forwarded.push(frame);
      if (need) continue;
      if (type === TYPE_HEADERS) {
        let payload = frame.subarray(9);
        const pad = flags & FLAG_PADDED ? payload[0] : 0;
        if (flags & FLAG_PADDED) payload = payload.subarray(1);
        if (flags & FLAG_PRIORITY) payload = payload.subarray(5);
        fragments = [payload.subarray(0, Math.max(0, payload.length - pad))];
      } else if (type === TYPE_CONTINUATION && fragments) fragments.push(frame.subarray(9));
      else if (type !== TYPE_SETTINGS && type !== TYPE_WINDOW_UPDATE && type !== TYPE_PRIORITY) need = 'native';
      if ((type === TYPE_HEADERS || type === TYPE_CONTINUATION) && flags & FLAG_END_HEADERS && fragments) need = verdictOf(Buffer.concat(fragments));
    }
    buf = Buffer.from(buf);
    if (need && ackDropped) finish(need);
  };

  const onClose = () => {
    done = true;
    clearTimeout(timer);
  };

  const timer = setTimeout(() => finish(need ?? 'native'), timeoutMs);
  timer.unref();
  socket.on('data', onData);
  socket.on('close', onClose);
  socket.write(EMPTY_SETTINGS);
}
