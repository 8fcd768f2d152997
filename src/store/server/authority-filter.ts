// Lets clients that send a URL as :authority (etcdctl 3.4 built with older grpc-go sends "https://host:port") reach
// Node's HTTP/2 server, whose nghttp2 resets such streams with PROTOCOL_ERROR before any JavaScript sees them.
import { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { HUFFMAN_CODES, HUFFMAN_LENGTHS, STATIC_NAMES } from './hpack-tables.js';

/*
 * Used only for connections that need it (connection-intake.ts decides from the first request).
 * The client-to-server byte stream is parsed into HTTP/2 frames. Every header block is decoded with HPACK, only to
 * follow the client's dynamic table; a block is rewritten only when an :authority or host value holds bytes nghttp2
 * refuses, each of which becomes "_". The value keeps its length, so the entry it adds to the server's dynamic table
 * has the same size as the client's and both tables stay in step; everything else passes through byte for byte.
 */

const PREFACE_LENGTH = 24;
const FRAME_HEADER = 9;
const TYPE_HEADERS = 0x1;
const TYPE_CONTINUATION = 0x9;
const FLAG_END_STREAM = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;
/** SETTINGS_MAX_FRAME_SIZE of Node's HTTP/2 server (the protocol default). */
const MAX_FRAME = 16384;
const DEFAULT_TABLE_SIZE = 4096;

/** Bytes nghttp2 accepts in an authority: unreserved, sub-delims, ":", "@", "[", "]", "%". */
const AUTHORITY_BYTE = new Uint8Array(256);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@[]%") AUTHORITY_BYTE[c.charCodeAt(0)] = 1;

/** The authority nghttp2 accepts for `value`, or undefined when it already does. */
export function saneAuthority(value: Buffer): Buffer | undefined {
  if (value.every((c) => AUTHORITY_BYTE[c] === 1)) return undefined;
  return Buffer.from(value.map((c) => (AUTHORITY_BYTE[c] === 1 ? c : 0x5f)));
}

// ---- Huffman decoding (RFC 7541 appendix B) ----------------------------------------------------------------------

/** A binary trie: node i has children at 2i, 2i+1 in `next`; leaves hold symbol + 1 in `symbol`. */
const trie = (() => {
  const next: number[] = [0, 0];
  const symbol: number[] = [0];
  for (let sym = 0; sym < HUFFMAN_CODES.length; sym++) {
    let node = 0;
    const code = HUFFMAN_CODES[sym];
    for (let bit = HUFFMAN_LENGTHS[sym] - 1; bit >= 0; bit--) {
      const b = (code >>> bit) & 1;
      let child = next[2 * node + b];
      if (!child) {
        child = symbol.length;
        symbol.push(0);
        next.push(0, 0);
        next[2 * node + b] = child;
      }
      node = child;
    }
    symbol[node] = sym + 1;
  }
  return { next: Int32Array.from(next), symbol: Int32Array.from(symbol) };
})();

function huffmanDecode(src: Buffer): Buffer {
  const out: number[] = [];
  let node = 0;
  for (const byte of src) {
    for (let bit = 7; bit >= 0; bit--) {
      node = trie.next[2 * node + ((byte >>> bit) & 1)];
      if (node === 0) throw new Error('bad Huffman code');
      const s = trie.symbol[node];
      if (s) {
        if (s === 257) throw new Error('EOS in Huffman string');
        out.push(s - 1);
        node = 0;
      }
    }
  }
  return Buffer.from(out);
}

// ---- HPACK ------------------------------------------------------------------------------------------------------

class HpackError extends Error {}

class Reader {
  constructor(
    readonly buf: Buffer,
    public pos = 0,
  ) {}
  byte(): number {
    if (this.pos >= this.buf.length) throw new HpackError('header block ends early');
    return this.buf[this.pos++];
  }
  int(prefixBits: number): number {
    const mask = (1 << prefixBits) - 1;
    let v = this.byte() & mask;
    if (v < mask) return v;
    let m = 0;
    for (;;) {
      const b = this.byte();
      v += (b & 0x7f) * 2 ** m;
      m += 7;
      if ((b & 0x80) === 0) return v;
      if (m > 28) throw new HpackError('integer too large');
    }
  }
  string(): Buffer {
    const huffman = (this.buf[this.pos] & 0x80) !== 0;
    const len = this.int(7);
    if (this.pos + len > this.buf.length) throw new HpackError('string ends past the block');
    const raw = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return huffman ? huffmanDecode(raw) : raw;
  }
}

function encodeInt(first: number, prefixBits: number, v: number): number[] {
  const mask = (1 << prefixBits) - 1;
  if (v < mask) return [first | v];
  const out = [first | mask];
  v -= mask;
  while (v >= 128) {
    out.push((v % 128) + 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

/** Follows the dynamic table of one connection's requests, and rewrites header blocks that need it. */
export class HeaderBlockFixer {
  /** Newest first: name and the entry's size (name + value + 32). */
  private entries: Array<{ name: string; size: number }> = [];
  private size = 0;
  private max = DEFAULT_TABLE_SIZE;

  private nameAt(index: number): string {
    if (index >= 1 && index <= STATIC_NAMES.length) return STATIC_NAMES[index - 1];
    const e = this.entries[index - STATIC_NAMES.length - 1];
    if (!e) throw new HpackError(`no table entry ${index}`);
    return e.name;
  }

  private add(name: string, valueLength: number): void {
    const size = name.length + valueLength + 32;
    this.entries.unshift({ name, size });
    this.size += size;
    this.evict();
  }

  private evict(): void {
    while (this.size > this.max && this.entries.length > 0) this.size -= this.entries.pop()!.size;
  }

  /** The block as the server should see it, or undefined when it can go through unchanged. */
  fix(block: Buffer): Buffer | undefined {
    const r = new Reader(block);
    const parts: Buffer[] = [];
    let copiedUpTo = 0;
    while (r.pos < block.length) {
      const start = r.pos;
      const b = block[start];
      if (b & 0x80) {
        r.int(7);
        continue;
      }
      if ((b & 0xe0) === 0x20) {
        this.max = r.int(5);
        this.evict();
        continue;
      }
      const indexing = (b & 0xc0) === 0x40;
      const nameIndex = r.int(indexing ? 6 : 4);
      const name = nameIndex ? this.nameAt(nameIndex) : r.string().toString('latin1');
      const valueStart = r.pos;
      const value = r.string();
      if (indexing) this.add(name, value.length);
      if (name !== ':authority' && name !== 'host') continue;
      const sane = saneAuthority(value);
      if (!sane) continue;
      parts.push(block.subarray(copiedUpTo, valueStart), Buffer.from(encodeInt(0, 7, sane.length)), sane);
      copiedUpTo = r.pos;
    }
    if (parts.length === 0) return undefined;
    parts.push(block.subarray(copiedUpTo));
    return Buffer.concat(parts);
  }
}

// ---- frames -----------------------------------------------------------------------------------------------------

function frameHeader(length: number, type: number, flags: number, streamId: number): Buffer {
  const h = Buffer.alloc(FRAME_HEADER);
  h.writeUIntBE(length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId & 0x7fffffff, 5);
  return h;
}

/** Splits the client's bytes into frames and hands back what the server should read. */
export class AuthorityRewriter {
  private pending = Buffer.alloc(0);
  private prefaceLeft = PREFACE_LENGTH;
  /** Payload bytes of a frame that passes unchanged, still to come. */
  private passLeft = 0;
  /** A header block spread over HEADERS and CONTINUATION frames, gathered until END_HEADERS. */
  private block: { streamId: number; flags: number; priority: Buffer; fragments: Buffer[]; original: Buffer[] } | undefined;
  private readonly fixer = new HeaderBlockFixer();
  /** After a parse failure everything passes unchanged, and nghttp2 judges the stream. */
  private broken = false;

  feed(chunk: Buffer): Buffer[] {
    if (this.broken) return [chunk];
    const out: Buffer[] = [];
    let buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    for (;;) {
      if (this.prefaceLeft > 0 || this.passLeft > 0) {
        const left = this.prefaceLeft > 0 ? this.prefaceLeft : this.passLeft;
        const n = Math.min(left, buf.length);
        if (n === 0) break;
        out.push(buf.subarray(0, n));
        buf = buf.subarray(n);
        if (this.prefaceLeft > 0) this.prefaceLeft -= n;
        else this.passLeft -= n;
        continue;
      }
      if (buf.length < FRAME_HEADER) break;
      const length = buf.readUIntBE(0, 3);
      const type = buf[3];
      if (type !== TYPE_HEADERS && type !== TYPE_CONTINUATION && !this.block) {
        out.push(buf.subarray(0, FRAME_HEADER));
        buf = buf.subarray(FRAME_HEADER);
        this.passLeft = length;
        continue;
      }
      if (buf.length < FRAME_HEADER + length) break;
      const frame = Buffer.from(buf.subarray(0, FRAME_HEADER + length));
      buf = buf.subarray(FRAME_HEADER + length);
      out.push(...this.headerFrame(frame));
      if (this.broken) {
        out.push(buf);
        buf = Buffer.alloc(0);
        break;
      }
    }
    this.pending = Buffer.from(buf);
    return out;
  }

  /** Gives up on this connection: the frames go on unchanged, and nghttp2 judges them. */
  private fail(frames: Buffer[]): Buffer[] {
    this.broken = true;
    this.block = undefined;
    return frames;
  }

  private headerFrame(frame: Buffer): Buffer[] {
    const type = frame[3];
    const flags = frame[4];
    const streamId = frame.readUInt32BE(5) & 0x7fffffff;
    if (type === TYPE_HEADERS) {
      if (this.block) return this.fail([...this.block.original, frame]);
      let payload = frame.subarray(FRAME_HEADER);
      const pad = flags & FLAG_PADDED ? payload[0] : 0;
      if (flags & FLAG_PADDED) payload = payload.subarray(1);
      const priority = flags & FLAG_PRIORITY ? payload.subarray(0, 5) : Buffer.alloc(0);
      if (priority.length + pad > payload.length) return this.fail([frame]);
      payload = payload.subarray(priority.length, payload.length - pad);
      this.block = { streamId, flags, priority, fragments: [payload], original: [frame] };
    } else {
      if (!this.block || type !== TYPE_CONTINUATION) return this.fail([...(this.block?.original ?? []), frame]);
      this.block.fragments.push(frame.subarray(FRAME_HEADER));
      this.block.original.push(frame);
    }
    if (!(flags & FLAG_END_HEADERS)) return [];
    const b = this.block;
    this.block = undefined;
    let fixed: Buffer | undefined;
    try {
      fixed = this.fixer.fix(Buffer.concat(b.fragments));
    } catch {
      return this.fail(b.original);
    }
    if (!fixed) return b.original;
    // One HEADERS frame (keeping END_STREAM and the priority), continued if the block outgrew a frame.
    const body = Buffer.concat([b.priority, fixed]);
    const out: Buffer[] = [];
    const keep = b.flags & (FLAG_END_STREAM | FLAG_PRIORITY);
    for (let off = 0, first = true; first || off < body.length; first = false) {
      const piece = body.subarray(off, off + MAX_FRAME);
      off += piece.length;
      const last = off >= body.length;
      out.push(frameHeader(piece.length, first ? TYPE_HEADERS : TYPE_CONTINUATION, (first ? keep : 0) | (last ? FLAG_END_HEADERS : 0), b.streamId), piece);
    }
    return out;
  }
}

/**
 * A duplex in front of an authenticated TLS socket, for grpc-js's connection injector: the server's bytes go out
 * unchanged, the client's bytes pass through an AuthorityRewriter.
 */
export class AuthorityNormalizingSocket extends Duplex {
  private readonly rewriter = new AuthorityRewriter();
  readonly encrypted = true;
  readonly alpnProtocol = 'h2';

  /** `initial`: bytes already read from the socket (by the connection intake), to go through the rewriter first. */
  constructor(
    private readonly socket: TLSSocket,
    initial?: Buffer,
  ) {
    super({ allowHalfOpen: true });
    // Node's HTTP/2 turns Nagle off on sockets it owns; this one it only sees through the wrapper.
    socket.setNoDelay(true);
    const take = (chunk: Buffer) => {
      const parts = this.rewriter.feed(chunk);
      // One push per chunk: each push is a crossing into the HTTP/2 session.
      const data = parts.length === 1 ? parts[0] : Buffer.concat(parts);
      if (data.length > 0 && !this.push(data)) socket.pause();
    };
    if (initial && initial.length > 0) take(initial);
    socket.on('data', take);
    socket.resume();
    socket.on('end', () => this.push(null));
    socket.on('close', () => this.destroy());
    socket.on('error', (e) => this.destroy(e));
    socket.on('timeout', () => this.emit('timeout'));
  }

  get remoteAddress() {
    return this.socket.remoteAddress;
  }
  get remotePort() {
    return this.socket.remotePort;
  }
  get remoteFamily() {
    return this.socket.remoteFamily;
  }
  get localAddress() {
    return this.socket.localAddress;
  }
  get localPort() {
    return this.socket.localPort;
  }
  getPeerCertificate(detailed?: boolean) {
    return this.socket.getPeerCertificate(detailed as true);
  }
  setNoDelay(noDelay?: boolean): this {
    this.socket.setNoDelay(noDelay);
    return this;
  }
  setKeepAlive(enable?: boolean, delay?: number): this {
    this.socket.setKeepAlive(enable, delay);
    return this;
  }
  setTimeout(ms: number, cb?: () => void): this {
    this.socket.setTimeout(ms, cb);
    return this;
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    if (this.socket.write(chunk)) cb();
    else this.socket.once('drain', () => cb());
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.socket.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.socket.destroy();
    cb(err);
  }
}
