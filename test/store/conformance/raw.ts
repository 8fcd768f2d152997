// A raw gRPC client for the etcd v3 API, so the conformance suite sees exact responses, codes and error texts.
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** The etcd protos as the npm etcd3 client ships them (already stripped of gogoproto): the same view of the wire as the store client. */
function protoPath(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('etcd3/package.json')), 'proto', 'rpc.proto');
}

/** Decoded messages: int64 as decimal strings, enums as names, bytes as Buffers, unset fields at their defaults. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Msg = Record<string, any>;

export interface RawError {
  code: number;
  details: string;
}

export interface Tls {
  cert: string;
  key: string;
  ca: string;
}

export interface WatchStream {
  send(req: Msg): void;
  /** The next response, or a rejection after `timeoutMs`. */
  next(timeoutMs?: number): Promise<Msg>;
  /** Responses until one satisfies `done` (inclusive). */
  until(done: (r: Msg) => boolean, timeoutMs?: number): Promise<Msg[]>;
  /** Resolves true if no response arrives within `ms` (for "nothing more is sent" checks). */
  quietFor(ms: number): Promise<boolean>;
  close(): void;
}

export interface KeepAliveStream {
  keepAlive(id: string, timeoutMs?: number): Promise<Msg>;
  close(): void;
}

export interface RawEtcd {
  range(req: Msg): Promise<Msg>;
  put(req: Msg): Promise<Msg>;
  deleteRange(req: Msg): Promise<Msg>;
  txn(req: Msg): Promise<Msg>;
  compact(req: Msg): Promise<Msg>;
  leaseGrant(req: Msg): Promise<Msg>;
  leaseRevoke(req: Msg): Promise<Msg>;
  leaseTimeToLive(req: Msg): Promise<Msg>;
  leaseLeases(): Promise<Msg>;
  status(): Promise<Msg>;
  /** The gRPC error a call fails with; rejects if the call succeeds. */
  error(p: Promise<unknown>): Promise<RawError>;
  watch(): WatchStream;
  keepAliveStream(): KeepAliveStream;
  close(): void;
}

let loaded: grpc.GrpcObject | undefined;
function etcdserverpb(): grpc.GrpcObject {
  if (!loaded) {
    const def = loadSync(protoPath(), { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
    loaded = grpc.loadPackageDefinition(def).etcdserverpb as grpc.GrpcObject;
  }
  return loaded;
}

type Ctor = new (address: string, creds: grpc.ChannelCredentials, opts?: grpc.ChannelOptions) => grpc.Client;

export function rawClient(endpoint: string, tls: Tls): RawEtcd {
  const pkg = etcdserverpb();
  const address = endpoint.replace(/^https?:\/\//, '');
  const creds = grpc.credentials.createSsl(Buffer.from(tls.ca), Buffer.from(tls.key), Buffer.from(tls.cert));
  // All services share one channel, as etcd's own client does.
  const opts: grpc.ChannelOptions = { 'grpc.max_receive_message_length': 16 * 1024 * 1024 };
  const mk = (name: string) => new (pkg[name] as unknown as Ctor)(address, creds, opts);
  const kv = mk('KV');
  const lease = new (pkg.Lease as unknown as Ctor)(address, creds, { ...opts, channelOverride: kv.getChannel() } as grpc.ChannelOptions);
  const watch = new (pkg.Watch as unknown as Ctor)(address, creds, { ...opts, channelOverride: kv.getChannel() } as grpc.ChannelOptions);
  const maint = new (pkg.Maintenance as unknown as Ctor)(address, creds, { ...opts, channelOverride: kv.getChannel() } as grpc.ChannelOptions);
  const deadline = () => ({ deadline: Date.now() + 10_000 });

  const unary = (c: grpc.Client, method: string) => (req: Msg) =>
    new Promise<Msg>((resolve, reject) => {
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      (c as any)[method](req, new grpc.Metadata(), deadline(), (err: grpc.ServiceError | null, res: Msg) =>
        err ? reject(err) : resolve(res),
      );
    });

  const streams: Array<{ cancel(): void }> = [];

  return {
    range: unary(kv, 'range'),
    put: unary(kv, 'put'),
    deleteRange: unary(kv, 'deleteRange'),
    txn: unary(kv, 'txn'),
    compact: unary(kv, 'compact'),
    leaseGrant: unary(lease, 'leaseGrant'),
    leaseRevoke: unary(lease, 'leaseRevoke'),
    leaseTimeToLive: unary(lease, 'leaseTimeToLive'),
    leaseLeases: () => unary(lease, 'leaseLeases')({}),
    status: () => unary(maint, 'status')({}),
    async error(p) {
      try {
        await p;
      } catch (e) {
        const err = e as grpc.ServiceError;
        if (typeof err.code !== 'number') throw e;
        return { code: err.code, details: err.details };
      }
      throw new Error('expected the call to fail, it succeeded');
    },
    watch() {
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      const call = (watch as any).watch(new grpc.Metadata()) as grpc.ClientDuplexStream<Msg, Msg>;
      streams.push(call);
      return queueStream(call);
    },
    keepAliveStream() {
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      const call = (lease as any).leaseKeepAlive(new grpc.Metadata()) as grpc.ClientDuplexStream<Msg, Msg>;
      streams.push(call);
      const q = queueStream(call);
      return {
        async keepAlive(id, timeoutMs) {
          q.send({ ID: id });
          return q.next(timeoutMs);
        },
        close: q.close,
      };
    },
    close() {
      for (const s of streams) s.cancel();
      for (const c of [watch, lease, maint, kv]) c.close();
    },
  };
}

function queueStream(call: grpc.ClientDuplexStream<Msg, Msg>): WatchStream {
  const buffered: Msg[] = [];
  let failure: Error | undefined;
  let waiter: (() => void) | undefined;
  call.on('data', (m: Msg) => {
    buffered.push(m);
    waiter?.();
  });
  call.on('error', (e: Error) => {
    if ((e as grpc.ServiceError).code === grpc.status.CANCELLED) return;
    failure = e;
    waiter?.();
  });
  const next = (timeoutMs = 5000) =>
    new Promise<Msg>((resolve, reject) => {
      const take = () => {
        if (buffered.length) {
          clearTimeout(timer);
          waiter = undefined;
          resolve(buffered.shift()!);
          return true;
        }
        if (failure) {
          clearTimeout(timer);
          waiter = undefined;
          reject(failure);
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        waiter = undefined;
        reject(new Error(`no watch/keepalive response within ${timeoutMs} ms`));
      }, timeoutMs);
      if (!take()) waiter = () => void take();
    });
  return {
    send: (req) => call.write(req),
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
    close: () => call.cancel(),
  };
}
