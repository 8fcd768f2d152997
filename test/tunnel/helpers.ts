// Shared pieces of the tunnel tests: a cluster PKI from src/pki, a node HTTPS endpoint served through the tunnel, a GET helper.
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, request, type Agent, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildCertificate, generateKeyPair, issuerOf, parseCertificate, pemEncode, selfSignedCa } from '../../src/pki/index.js';
import type { ExtKeyUsage } from '../../src/pki/types.js';
import { serverOptions } from '../../src/tls/policy.js';
import { waitFor } from '../../src/util/wait.js';
import type { PeerSetup } from './peer-child.js';
import { startTunnelAgent, startTunnelServer, type TunnelAgent, type TunnelAgentOptions, type TunnelServer, type TunnelServerOptions } from '../../src/tunnel/index.js';

const HOUR = 3600_000;

export interface Issued {
  cert: string;
  key: string;
  serialHex: string;
}

export interface ClusterPki {
  /** The root certificate, PEM. */
  ca: string;
  issue(o: { cn: string; o?: string[]; dns?: string[]; ip?: string[]; eku: ExtKeyUsage[]; validMs?: number }): Promise<Issued>;
  /** A kubelet client certificate: CN system:node:<name>, O system:nodes. */
  nodeClient(name: string): Promise<Issued>;
  /** A kubelet serving certificate for the node's endpoint: CN system:node:<name>, DNS SAN <name>. */
  nodeServing(name: string): Promise<Issued>;
  /** The tunnel server's serving certificate for 127.0.0.1. */
  tunnelServing(): Promise<Issued>;
  /** The API server's client certificate for talking to kubelets. */
  apiserverClient(): Promise<Issued>;
}

/** A cluster root CA (P-256) made with trustplane's own PKI, valid from an hour ago. */
export async function clusterPki(name = 'cluster root CA'): Promise<ClusterPki> {
  const root = await generateKeyPair({ kind: 'ec', curve: 'P-256' });
  const now = Date.now();
  const rootDer = await selfSignedCa({ subject: [{ type: 'CN', value: name }], notBefore: new Date(now - HOUR), notAfter: new Date(now + 30 * 24 * HOUR), signer: root.signer });
  const issuer = issuerOf(parseCertificate(rootDer), root.signer);
  const issue: ClusterPki['issue'] = async (o) => {
    const leaf = await generateKeyPair({ kind: 'ec', curve: 'P-256' });
    const der = await buildCertificate(
      {
        subject: [...(o.o ?? []).map((value) => ({ type: 'O', value })), { type: 'CN', value: o.cn }],
        notBefore: new Date(Date.now() - HOUR),
        notAfter: new Date(Date.now() + (o.validMs ?? 24 * HOUR)),
        publicKey: leaf.signer.publicKey,
        isCA: false,
        keyUsage: ['digitalSignature'],
        extKeyUsage: o.eku,
        sans: o.dns || o.ip ? { dns: o.dns ?? [], ip: o.ip ?? [] } : undefined,
      },
      issuer,
    );
    return { cert: pemEncode('CERTIFICATE', der), key: leaf.privateKeyPem, serialHex: parseCertificate(der).serialHex };
  };
  return {
    ca: pemEncode('CERTIFICATE', rootDer),
    issue,
    nodeClient: (n) => issue({ cn: `system:node:${n}`, o: ['system:nodes'], eku: ['clientAuth'] }),
    nodeServing: (n) => issue({ cn: `system:node:${n}`, o: ['system:nodes'], dns: [n], eku: ['serverAuth'] }),
    tunnelServing: () => issue({ cn: 'trustplane-tunnel', dns: ['localhost'], ip: ['127.0.0.1'], eku: ['serverAuth'] }),
    apiserverClient: () => issue({ cn: 'kube-apiserver-kubelet-client', o: ['system:masters'], eku: ['clientAuth'] }),
  };
}

export interface NodeEndpoint {
  server: Server;
  /** TLS connections the endpoint has accepted (each one arrived as a tunnel stream). */
  accepted: number;
  /** Bytes /big has handed to the response so far, by request id. */
  sent: Map<string, number>;
  /** Requests to /hold, by id: their bodies are not read until release() is called, which answers with the byte count. */
  held: Map<string, () => void>;
  close(): void;
}

/**
 * The node's HTTPS endpoint (kubelet-like): its own serving certificate, client certificates from the cluster CA required.
 * It listens on no port: the tunnel hands it streams with `server.emit('connection', stream)`.
 *   GET /whoami      → JSON about the TLS session as the node sees it
 *   POST /echo       → the request body
 *   GET /big?bytes=N&id=X → N bytes, written with backpressure (progress in `sent`)
 *   POST /hold?id=X  → the body is left unread until `held.get(X)()`, then counted; answers with the count
 */
export async function startNodeEndpoint(pki: ClusterPki, node: string, o: { label?: string } = {}): Promise<NodeEndpoint> {
  const serving = await pki.nodeServing(node);
  const sockets = new Set<TLSSocket>();
  const ep: NodeEndpoint = {
    server: undefined as unknown as Server,
    accepted: 0,
    sent: new Map(),
    held: new Map(),
    close() {
      for (const s of sockets) s.destroy();
      ep.server.close(() => undefined);
    },
  };
  ep.server = createServer(serverOptions({ cert: serving.cert, key: serving.key, ca: pki.ca, clientCert: 'require' }), (req, res) => handle(ep, node, o.label, req, res));
  ep.server.on('secureConnection', (s: TLSSocket) => {
    ep.accepted++;
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  ep.server.on('tlsClientError', () => undefined);
  return ep;
}

function handle(ep: NodeEndpoint, node: string, label: string | undefined, req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'https://node');
  const socket = req.socket as TLSSocket;
  if (url.pathname === '/whoami') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ node, label, client: socket.getPeerCertificate().subject?.CN, authorized: socket.authorized, protocol: socket.getProtocol() }));
  } else if (url.pathname === '/echo') {
    req.pipe(res);
  } else if (url.pathname === '/big') {
    const total = Number(url.searchParams.get('bytes'));
    const id = url.searchParams.get('id') ?? '';
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let sent = 0;
    const write = () => {
      while (sent < total) {
        const n = Math.min(chunk.length, total - sent);
        sent += n;
        ep.sent.set(id, sent);
        if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void res.once('drain', write);
      }
      res.end();
    };
    write();
  } else if (url.pathname === '/hold') {
    req.pause();
    ep.held.set(url.searchParams.get('id') ?? '', () => {
      let n = 0;
      req.on('data', (d: Buffer) => (n += d.length));
      req.on('end', () => res.end(String(n)));
      req.resume();
    });
  } else {
    res.statusCode = 404;
    res.end('not found');
  }
}

export interface Response {
  status: number;
  body: Buffer;
  socket: TLSSocket;
}

/** One HTTPS request through `agent`; resolves with the whole body. */
export function fetchVia(agent: Agent, url: string, o: { method?: string; body?: Buffer | string; timeoutMs?: number } = {}): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, method: o.method ?? 'GET', timeout: o.timeoutMs ?? 15_000 }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts), socket: res.socket as TLSSocket }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`request to ${url} timed out`)));
    req.on('error', reject);
    req.end(o.body);
  });
}

export interface Tunnel {
  server: TunnelServer;
  agent: TunnelAgent;
  endpoint: NodeEndpoint;
  logs: Array<{ msg: string; fields?: object }>;
  close(): Promise<void>;
}

/** A tunnel server and one node's agent serving `endpoint` through it, connected. */
export async function startTunnel(
  pki: ClusterPki,
  node: string,
  o: { server?: Partial<TunnelServerOptions>; agent?: Partial<TunnelAgentOptions>; endpoint?: NodeEndpoint } = {},
): Promise<Tunnel> {
  const logs: Tunnel['logs'] = [];
  const serving = await pki.tunnelServing();
  const server = await startTunnelServer({ tls: { cert: serving.cert, key: serving.key, clientCa: pki.ca }, log: (msg, fields) => logs.push({ msg, fields }), ...o.server });
  const endpoint = o.endpoint ?? (await startNodeEndpoint(pki, node));
  const client = await pki.nodeClient(node);
  const agent = startTunnelAgent({
    url: server.url,
    credentials: () => ({ cert: client.cert, key: client.key, ca: pki.ca }),
    onStream: (s) => endpoint.server.emit('connection', s),
    backoff: { initialMs: 50, maxMs: 500 },
    ...o.agent,
  });
  try {
    await agent.waitConnected(10_000);
    await server.waitFor(node, 10_000);
  } catch (e) {
    await agent.close();
    await server.close();
    endpoint.close();
    throw e;
  }
  return {
    server,
    agent,
    endpoint,
    logs,
    async close() {
      await agent.close();
      await server.close();
      endpoint.close();
    },
  };
}

/** Records every `event` of `emitter` from now on, with its time and arguments. */
export function collect(emitter: { on(e: string, f: (...a: any[]) => void): unknown }, event: string): Array<{ at: number; args: unknown[] }> {
  const seen: Array<{ at: number; args: unknown[] }> = [];
  emitter.on(event, (...args: unknown[]) => seen.push({ at: Date.now(), args }));
  return seen;
}

/** openssl s_client against a port, asynchronously (the server under test runs in this process's event loop). */
export { sClient } from '../helpers/tls-floor.js';

export interface Peer {
  proc: ChildProcess;
  out: () => string;
  /** The next message from the child; `{ exited, out }` if it exits first. */
  next(timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Tells the child to close its end. */
  close(): void;
  /** Resolves with the exit code; the child is killed if it has not exited by the deadline. */
  exited(deadlineMs: number): Promise<number | null>;
}

/** One end of a tunnel in a child process (see peer-child.ts). */
export function startPeer(setup: PeerSetup): Peer {
  const proc = fork(join(dirname(fileURLToPath(import.meta.url)), 'peer-child.js'), [], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const inbox: Array<Record<string, unknown>> = [];
  proc.on('message', (m) => inbox.push(m as Record<string, unknown>));
  const exit = once(proc, 'exit').then(([code]) => code as number | null);
  proc.send(setup);
  return {
    proc,
    out: () => out,
    next: (timeoutMs = 15_000) =>
      waitFor(
        'a message from the child',
        () => {
          const m = inbox.shift();
          if (m) return m;
          if (proc.exitCode !== null) return { exited: proc.exitCode, out };
          return undefined;
        },
        timeoutMs,
        10,
      ),
    close: () => void proc.send('close'),
    async exited(deadlineMs) {
      const t = setTimeout(() => proc.kill('SIGKILL'), deadlineMs);
      const code = await exit;
      clearTimeout(t);
      return code;
    },
  };
}
