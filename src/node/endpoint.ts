// The node endpoint: HTTPS with the kubelet serving certificate, client certificates from the cluster root CA required,
// serving /healthz, /logs and /configz. It listens on no public port: the reverse tunnel hands it connections.
import { closeSync, createReadStream, openSync, readSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createSecureContext, type TLSSocket } from 'node:tls';
import { ListenerGuard, type ConnectionLimits } from '../tls/listener-guard.js';
import { serverOptions, type MinVersion } from '../tls/policy.js';
import { invalid } from '../util/errors.js';

export interface NodeEndpointOptions {
  /** The kubelet serving certificate chain (PEM) and its key. */
  cert: string;
  key: string;
  /** Client certificates must chain to this (the cluster root CA bundle). */
  clientCa: string;
  minVersion?: MinVersion;
  /** The agent's own log file, served at /logs. */
  logFile: string;
  /** The agent's non-secret configuration, served at /configz. */
  configz(): unknown;
  /** Prometheus text served at /metrics (the agent's certificate lifetimes). */
  metrics?(): string;
  /** Also listen here (loopback only; for tests and local debugging). */
  listen?: { host?: string; port?: number };
  /** How often a followed log is looked at for new lines; default 250 ms. */
  followPollMs?: number;
  /** Handshake and idle timeouts, connection caps (of the loopback listener; tunnel streams are counted by the tunnel). */
  limits?: ConnectionLimits;
}

export interface NodeEndpoint {
  /** Serves one connection that arrived some other way (a reverse tunnel stream): the TLS handshake runs over it. */
  handleConnection(socket: Duplex): void;
  /** New serving certificate for new connections; open ones keep theirs. */
  setServingCert(c: { cert: string; key: string }): void;
  setClientCa(pem: string): void;
  /** https://127.0.0.1:port when `listen` was given. */
  readonly url: string | undefined;
  close(): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);
const MAX_TAIL_LINES = 100_000;

/** The last `n` lines of a file, read backwards in blocks so a large log costs only what is sent. */
export function tailLines(path: string, n: number): { text: string; size: number } {
  const fd = openSync(path, 'r');
  try {
    const size = statSync(path).size;
    if (n <= 0) return { text: '', size };
    const block = 64 * 1024;
    let pos = size;
    let buf = Buffer.alloc(0);
    let newlines = 0;
    while (pos > 0) {
      const len = Math.min(block, pos);
      pos -= len;
      const chunk = Buffer.alloc(len);
      readSync(fd, chunk, 0, len, pos);
      buf = Buffer.concat([chunk, buf]);
      newlines = 0;
      // A trailing newline ends the last line rather than starting an empty one.
      for (let i = buf.length - 2; i >= 0; i--) if (buf[i] === 0x0a && ++newlines === n) return { text: buf.subarray(i + 1).toString('utf8'), size };
    }
    return { text: buf.toString('utf8'), size };
  } finally {
    closeSync(fd);
  }
}

function peerIsNode(req: IncomingMessage): boolean {
  const subject = (req.socket as TLSSocket).getPeerCertificate?.()?.subject as unknown as Record<string, string | string[]> | undefined;
  const o = subject?.O;
  return (Array.isArray(o) ? o : o ? [o] : []).includes('system:nodes');
}

export async function startNodeEndpoint(o: NodeEndpointOptions): Promise<NodeEndpoint> {
  const material = { cert: o.cert, key: o.key, ca: o.clientCa };
  const tls = () => serverOptions({ ...material, minVersion: o.minVersion, clientCert: 'require' });
  createSecureContext(tls());
  const follows = new Set<() => void>();

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'https://node.invalid');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const text = (code: number, body: string) => {
      res.writeHead(code, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    };
    // The handshake has already required a certificate from the cluster root CA; nodes never call nodes.
    if (!(req.socket as TLSSocket).authorized) return text(401, 'a client certificate from the cluster root CA is required\n');
    if (peerIsNode(req)) return text(403, 'nodes may not call other nodes\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return text(405, `${req.method} is not allowed\n`);
    if (path === '/healthz') return text(200, 'ok');
    if (path === '/configz') {
      const body = JSON.stringify(o.configz(), null, 2);
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
      return res.end(body);
    }
    if (path === '/logs') return serveLogs(url.searchParams, res, text);
    if (path === '/metrics' && o.metrics) {
      const body = o.metrics();
      res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
      return res.end(body);
    }
    return text(404, `${path} is not served here; try /healthz, /logs, /configz or /metrics\n`);
  };

  function serveLogs(q: URLSearchParams, res: ServerResponse, text: (code: number, body: string) => void): void {
    const tailParam = q.get('tailLines');
    const follow = q.get('follow') === 'true' || q.get('follow') === '1';
    let tail: number | undefined;
    if (tailParam !== null) {
      tail = Number(tailParam);
      if (!Number.isInteger(tail) || tail < 0) return text(400, `tailLines must be a whole number, not "${tailParam}"\n`);
      tail = Math.min(tail, MAX_TAIL_LINES);
    }
    let offset: number;
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-cache', ...(follow ? { 'Transfer-Encoding': 'chunked' } : {}) });
    try {
      if (tail !== undefined) {
        const t = tailLines(o.logFile, tail);
        res.write(t.text);
        offset = t.size;
      } else {
        const size = statSync(o.logFile).size;
        if (!follow) {
          if (size === 0) res.end();
          else createReadStream(o.logFile, { start: 0, end: size - 1 }).pipe(res);
          return;
        }
        const t = tailLines(o.logFile, MAX_TAIL_LINES);
        res.write(t.text);
        offset = t.size;
      }
    } catch (e) {
      res.end(`cannot read the log: ${(e as Error).message}\n`);
      return;
    }
    if (!follow) return void res.end();
    // Following: poll for growth (fs.watch is unreliable across filesystems), send what was appended.
    const timer = setInterval(() => {
      try {
        const size = statSync(o.logFile).size;
        if (size < offset) offset = 0; // truncated or replaced
        if (size > offset) {
          const fd = openSync(o.logFile, 'r');
          try {
            const buf = Buffer.alloc(Math.min(size - offset, 1 << 20));
            const n = readSync(fd, buf, 0, buf.length, offset);
            offset += n;
            res.write(buf.subarray(0, n));
          } finally {
            closeSync(fd);
          }
        }
      } catch {
        // The file is being rotated: look again next time.
      }
    }, o.followPollMs ?? 250);
    const stop = () => {
      clearInterval(timer);
      follows.delete(stop);
      res.end();
    };
    follows.add(stop);
    res.on('close', stop);
  }

  // The guard bounds handshakes and idle time and destroys what fails, for loopback connections and tunnel streams alike.
  const guard = new ListenerGuard({ name: 'node endpoint', limits: o.limits, tls: true, requests: 'http' });
  const server: Server = createServer({ ...tls(), ...guard.serverOptions() }, handler);
  guard.attach(server);
  const sockets = new Set<Duplex>();
  const track = (s: Duplex) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };
  server.on('connection', (s: Socket) => track(s));

  let url: string | undefined;
  if (o.listen) {
    const host = o.listen.host ?? '127.0.0.1';
    if (!LOOPBACK.has(host)) throw invalid(`the node endpoint listens on loopback only, not on ${host}`, 'the control plane reaches it through the reverse tunnel');
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.listen!.port ?? 0, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const port = (server.address() as AddressInfo).port;
    url = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  let closing: Promise<void> | undefined;
  return {
    url,
    handleConnection(socket: Duplex) {
      if (closing) return void socket.destroy();
      // The https server wraps it in a TLSSocket and runs the handshake and HTTP over it, as for a TCP connection.
      server.emit('connection', socket);
    },
    setServingCert(c) {
      const next = { ...material, cert: c.cert, key: c.key };
      createSecureContext(serverOptions({ ...next, minVersion: o.minVersion, clientCert: 'require' }));
      material.cert = c.cert;
      material.key = c.key;
      server.setSecureContext(tls());
    },
    setClientCa(pem) {
      createSecureContext(serverOptions({ ...material, ca: pem, minVersion: o.minVersion, clientCert: 'require' }));
      material.ca = pem;
      server.setSecureContext(tls());
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const stop of [...follows]) stop();
        if (url) server.close(() => resolve());
        else resolve();
        server.closeAllConnections();
        for (const s of sockets) s.destroy();
      });
      return closing;
    },
  };
}
