// Hostile connection floods for tests of listeners: idle, half-open, closed and slow (slowloris) connections, and descriptor counts.
import { readdirSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';

/** Open descriptors of a process (this one by default), from /proc. */
export function fdCount(pid: number | 'self' = 'self'): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** The start of a TLS 1.2/1.3 ClientHello (record header, handshake header, version, part of the random): a server waits for the rest. */
export const PARTIAL_CLIENT_HELLO = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]), Buffer.alloc(20, 0x42)]);

export interface FloodPlan {
  /** Connect and send nothing. */
  idle?: number;
  /** Send the start of a ClientHello, then nothing. */
  partialHello?: number;
  /** Send a ClientHello one byte per `dripMs` (slowloris on the handshake). */
  slowHello?: number;
  /** Send the start of a ClientHello, then half-close (FIN) and wait. */
  halfOpen?: number;
  /** Send the start of a ClientHello and go away at once: what the server holds then is its own leak. */
  closed?: number;
  /** Finish the TLS handshake (with these options), then send an HTTP/1.1 request's headers one byte per `dripMs`. */
  partialHeaders?: number;
  /** Finish the TLS handshake (with these options), then send nothing. */
  idleAfterHandshake?: number;
  tls?: ConnectionOptions;
  dripMs?: number;
}

export interface Flood {
  /** Connections the flood opened and that are still open on this side. */
  open(): number;
  /** Connections that this side did not close but that are closed now (the server hung up). */
  closedByPeer(): number;
  /** How many connections the flood expects the server to close (all but `closed`). */
  readonly expectPeerClose: number;
  /** Destroys every connection of the flood and stops dripping. */
  stop(): void;
}

/** Opens the flood against host:port, in batches so the listen backlog never overflows; resolves once every connection is made. */
export async function openFlood(host: string, port: number, plan: FloodPlan): Promise<Flood> {
  const sockets = new Set<Socket>();
  const selfClosed = new WeakSet<Socket>();
  let closedByPeer = 0;
  const timers: NodeJS.Timeout[] = [];
  const dripMs = plan.dripMs ?? 200;
  const track = (s: Socket) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.once('close', () => {
      sockets.delete(s);
      if (!selfClosed.has(s)) closedByPeer++;
    });
  };
  const drip = (s: Socket, bytes: Buffer) => {
    let i = 0;
    const t = setInterval(() => {
      if (s.destroyed || i >= bytes.length) return clearInterval(t);
      s.write(bytes.subarray(i, ++i));
    }, dripMs);
    timers.push(t);
  };
  const raw = (then: (s: Socket) => void) =>
    new Promise<void>((resolve) => {
      const s = netConnect({ host, port });
      track(s);
      s.once('connect', () => {
        then(s);
        resolve();
      });
      s.once('close', () => resolve());
    });
  const secured = (then: (s: Socket) => void) =>
    new Promise<void>((resolve) => {
      const s = tlsConnect({ host, port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'], ...plan.tls });
      track(s);
      s.once('secureConnect', () => {
        then(s);
        resolve();
      });
      s.once('close', () => resolve());
    });
  const jobs: Array<() => Promise<void>> = [];
  for (let i = 0; i < (plan.idle ?? 0); i++) jobs.push(() => raw(() => undefined));
  for (let i = 0; i < (plan.partialHello ?? 0); i++) jobs.push(() => raw((s) => s.write(PARTIAL_CLIENT_HELLO)));
  for (let i = 0; i < (plan.slowHello ?? 0); i++) jobs.push(() => raw((s) => drip(s, Buffer.concat([PARTIAL_CLIENT_HELLO, Buffer.alloc(512, 0x42)]))));
  for (let i = 0; i < (plan.halfOpen ?? 0); i++) jobs.push(() => raw((s) => s.end(PARTIAL_CLIENT_HELLO)));
  for (let i = 0; i < (plan.closed ?? 0); i++)
    jobs.push(() =>
      raw((s) => {
        selfClosed.add(s);
        s.write(PARTIAL_CLIENT_HELLO, () => s.destroy());
      }),
    );
  for (let i = 0; i < (plan.partialHeaders ?? 0); i++)
    jobs.push(() => secured((s) => drip(s, Buffer.from(`GET /version HTTP/1.1\r\nHost: localhost\r\n${'X-Slow: yes\r\n'.repeat(40)}\r\n`))));
  for (let i = 0; i < (plan.idleAfterHandshake ?? 0); i++) jobs.push(() => secured(() => undefined));
  const BATCH = 200;
  for (let i = 0; i < jobs.length; i += BATCH) await Promise.all(jobs.slice(i, i + BATCH).map((j) => j()));
  const total = jobs.length;
  return {
    open: () => sockets.size,
    closedByPeer: () => closedByPeer,
    expectPeerClose: total - (plan.closed ?? 0),
    stop() {
      for (const t of timers) clearInterval(t);
      for (const s of [...sockets]) {
        selfClosed.add(s);
        s.destroy();
      }
    },
  };
}
