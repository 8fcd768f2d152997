// Test harness for the store server: certificates from openssl, a raw gRPC client on the checked-in protos, etcdctl.
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTunedStoreServer, type RunningStore, type StoreServerOptions } from '../../../src/store/server/index.js';
import type { Tuning } from '../../../src/store/server/core.js';
import { protoDir } from '../../../src/store/server/proto.js';
import { makeOpensslCa, type OpensslCa, type PemPair } from '../../helpers/openssl-certs.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Msg = Record<string, any>;

export interface Pki {
  ca: OpensslCa;
  server: PemPair;
  client: PemPair;
}

/** A CA with a server certificate for 127.0.0.1/localhost and a client certificate. */
export function makePki(name = 'store test CA'): Pki {
  const ca = makeOpensslCa(name);
  return {
    ca,
    server: ca.issue('server', { cn: 'store', sans: ['IP:127.0.0.1', 'DNS:localhost'], eku: ['serverAuth', 'clientAuth'] }),
    client: ca.issue('client', { cn: 'root', eku: ['clientAuth'] }),
  };
}

export function tempDir(prefix = 'tp-store-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface TestStore {
  server: RunningStore;
  pki: Pki;
  dir: string;
  dbPath: string;
  client: RawClient;
  /** Runs etcdctl with this store's endpoint and client certificate. */
  etcdctl(args: string[], opts?: { timeoutMs?: number; input?: string }): Promise<{ code: number; stdout: string; stderr: string }>;
  close(): Promise<void>;
}

export async function startTestStore(
  o: Partial<StoreServerOptions> & { pki?: Pki; dir?: string } = {},
  tuning: Partial<Tuning> = { leaseCheckMs: 20 },
): Promise<TestStore> {
  const pki = o.pki ?? makePki();
  const dir = o.dir ?? tempDir();
  const dbPath = o.dbPath ?? join(dir, 'state.db');
  const server = await startTunedStoreServer(
    { ...o, dbPath, tls: o.tls ?? { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert } },
    tuning,
  );
  const client = rawClient(server.endpoint, { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key });
  return {
    server,
    pki,
    dir,
    dbPath,
    client,
    etcdctl: (args, opts) => etcdctl(server.endpoint, pki, args, opts),
    async close() {
      client.close();
      await server.close();
    },
  };
}

export function etcdctl(
  endpoint: string,
  pki: Pki,
  args: string[],
  opts: { timeoutMs?: number; input?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const full = [
    `--endpoints=${endpoint}`,
    `--cacert=${pki.ca.certFile}`,
    `--cert=${pki.client.certFile}`,
    `--key=${pki.client.keyFile}`,
    '--command-timeout=5s',
    ...args,
  ];
  return new Promise((resolve) => {
    // Asynchronous on purpose: the server under test runs in this process.
    const child = execFile('etcdctl', full, { env: { ...process.env, ETCDCTL_API: '3' }, timeout: opts.timeoutMs ?? 15000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException).code === 'number' ? Number((err as NodeJS.ErrnoException).code) : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

// ---- raw gRPC client on src/store/proto ---------------------------------------------------------------------------

let pkgCache: grpc.GrpcObject | undefined;
function etcdserverpb(): grpc.GrpcObject {
  if (!pkgCache) {
    const def = loadSync('etcdserverpb/rpc.proto', { includeDirs: [protoDir()], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
    pkgCache = grpc.loadPackageDefinition(def).etcdserverpb as grpc.GrpcObject;
  }
  return pkgCache;
}

type Ctor = new (address: string, creds: grpc.ChannelCredentials, opts?: grpc.ChannelOptions) => grpc.Client;

export interface Stream {
  send(req: Msg): void;
  next(timeoutMs?: number): Promise<Msg>;
  /** Responses until one satisfies `done` (inclusive). */
  until(done: (r: Msg) => boolean, timeoutMs?: number): Promise<Msg[]>;
  /** True if nothing arrives for `ms`. */
  quietFor(ms: number): Promise<boolean>;
  end(): void;
  close(): void;
  /** Resolves with the status the stream ended with. */
  ended: Promise<grpc.StatusObject | Error>;
}

export interface RawClient {
  call(service: 'KV' | 'Lease' | 'Maintenance' | 'Cluster' | 'Auth', method: string, req: Msg): Promise<Msg>;
  range(req: Msg): Promise<Msg>;
  put(req: Msg): Promise<Msg>;
  deleteRange(req: Msg): Promise<Msg>;
  txn(req: Msg): Promise<Msg>;
  compact(req: Msg): Promise<Msg>;
  /** The gRPC error of a call that must fail. */
  error(p: Promise<unknown>): Promise<{ code: number; details: string }>;
  watch(): Stream;
  keepAlive(): Stream;
  /** Sends raw bytes as the request of `path` (e.g. malformed protobuf). */
  rawUnary(path: string, body: Buffer): Promise<Buffer>;
  close(): void;
}

export function rawClient(endpoint: string, tls: { ca: string; cert?: string; key?: string }): RawClient {
  const pkg = etcdserverpb();
  const address = endpoint.replace(/^https:\/\//, '');
  const creds =
    tls.cert && tls.key
      ? grpc.credentials.createSsl(Buffer.from(tls.ca), Buffer.from(tls.key), Buffer.from(tls.cert))
      : grpc.credentials.createSsl(Buffer.from(tls.ca));
  const opts: grpc.ChannelOptions = { 'grpc.max_receive_message_length': 64 * 1024 * 1024, 'grpc.max_send_message_length': 64 * 1024 * 1024 };
  const kv = new (pkg.KV as unknown as Ctor)(address, creds, opts);
  const shared = { ...opts, channelOverride: kv.getChannel() } as grpc.ChannelOptions;
  const clients: Record<string, grpc.Client> = { KV: kv };
  const client = (name: string) => (clients[name] ??= new (pkg[name] as unknown as Ctor)(address, creds, shared));
  const streams: Array<{ cancel(): void }> = [];
  const call = (service: string, method: string, req: Msg) =>
    new Promise<Msg>((resolve, reject) => {
      const c = client(service) as unknown as Record<string, (...a: unknown[]) => void>;
      const name = method.charAt(0).toLowerCase() + method.slice(1);
      c[name].call(c, req, new grpc.Metadata(), { deadline: Date.now() + 20000 }, (err: grpc.ServiceError | null, res: Msg) =>
        err ? reject(err) : resolve(res),
      );
    });
  const stream = (service: string, method: string): Stream => {
    const c = client(service) as unknown as Record<string, (...a: unknown[]) => grpc.ClientDuplexStream<Msg, Msg>>;
    const s = c[method].call(c, new grpc.Metadata());
    streams.push(s);
    return queue(s);
  };
  return {
    call,
    range: (r) => call('KV', 'Range', r),
    put: (r) => call('KV', 'Put', r),
    deleteRange: (r) => call('KV', 'DeleteRange', r),
    txn: (r) => call('KV', 'Txn', r),
    compact: (r) => call('KV', 'Compact', r),
    async error(p) {
      try {
        await p;
      } catch (e) {
        const err = e as grpc.ServiceError;
        if (typeof err.code !== 'number') throw e;
        return { code: err.code, details: err.details };
      }
      throw new Error('expected the call to fail; it succeeded');
    },
    watch: () => stream('Watch', 'watch'),
    keepAlive: () => stream('Lease', 'leaseKeepAlive'),
    rawUnary: (path, body) =>
      new Promise((resolve, reject) => {
        kv.makeUnaryRequest(
          path,
          (b: Buffer) => b,
          (b: Buffer) => b,
          body,
          (err: grpc.ServiceError | null, res?: Buffer) => (err ? reject(err) : resolve(res!)),
        );
      }),
    close() {
      for (const s of streams) s.cancel();
      for (const c of Object.values(clients)) c.close();
    },
  };
}

function queue(call: grpc.ClientDuplexStream<Msg, Msg>): Stream {
  const buffered: Msg[] = [];
  let failure: Error | undefined;
  let waiter: (() => void) | undefined;
  let endedResolve!: (s: grpc.StatusObject | Error) => void;
  const ended = new Promise<grpc.StatusObject | Error>((r) => (endedResolve = r));
  call.on('data', (m: Msg) => {
    buffered.push(m);
    waiter?.();
  });
  call.on('status', (s: grpc.StatusObject) => endedResolve(s));
  call.on('error', (e: Error) => {
    endedResolve(e);
    if ((e as grpc.ServiceError).code === grpc.status.CANCELLED) return;
    failure = e;
    waiter?.();
  });
  const next = (timeoutMs = 5000) =>
    new Promise<Msg>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiter = undefined;
        reject(new Error(`no stream response within ${timeoutMs} ms`));
      }, timeoutMs);
      const take = () => {
        if (buffered.length) {
          clearTimeout(timer);
          waiter = undefined;
          resolve(buffered.shift()!);
        } else if (failure) {
          clearTimeout(timer);
          waiter = undefined;
          reject(failure);
        }
      };
      waiter = take;
      take();
    });
  return {
    send: (req) => void call.write(req),
    next,
    async until(done, timeoutMs = 5000) {
      const out: Msg[] = [];
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const r = await next(Math.max(1, deadline - Date.now()));
        out.push(r);
        if (done(r)) return out;
      }
    },
    async quietFor(ms) {
      try {
        await next(ms);
        return false;
      } catch (e) {
        if (failure) throw e;
        return true;
      }
    },
    end: () => call.end(),
    close: () => call.cancel(),
    ended,
  };
}

export const b = (s: string) => Buffer.from(s);
export const str = (v: Buffer | undefined) => (v ? Buffer.from(v).toString() : '');
/** The range end that selects every key with prefix `p`. */
export function prefixEnd(p: string): Buffer {
  const e = Buffer.from(p);
  for (let i = e.length - 1; i >= 0; i--) {
    if (e[i] < 0xff) {
      e[i]++;
      return e.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}
