// Store throughput and watch latency through trustplane's store client: the embedded store beside a real 1-member etcd
// started in the same run. Each store is its own process with mutual TLS (client certificates required); this process
// is only the client, the same for both.
//
// STORE_BENCH_TARGETS=embedded (or etcd) measures one side only (for profiling; the other side's figures are then 0).
// STORE_BENCH_NODE_ARGS='--cpu-prof --cpu-prof-dir=DIR' profiles the embedded server process.
import { openStore, type Store } from '../src/store/client.js';
import { startEtcdTarget, type StoreTarget } from '../test/store/conformance/targets.js';
import { percentile, result, type Benchmark, type BenchResult } from './lib.js';
import { startEmbeddedChild } from './store-process.js';

const OPS = 10_000;
const RANGE_KEYS = 10_000;
const RANGE_SECONDS = 3;
const WATCHERS = 1000;
const WATCH_PUTS = 100;

export interface Figures {
  putC1: number; // puts/s, one at a time
  putC64: number; // puts/s, 64 in flight
  getC64: number; // gets/s, 64 in flight
  range10k: number; // ranges/s over a 10k-key prefix
  watchP50: number; // ms from put to event, over every watcher
  watchP99: number;
}

const value = Buffer.alloc(128, 0x61);

/** `n` operations, `concurrency` at a time; returns operations per second. */
async function rate(n: number, concurrency: number, op: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) await op(next++);
    }),
  );
  return n / (Number(process.hrtime.bigint() - t0) / 1e9);
}

async function watchLatency(store: Store): Promise<{ p50: number; p99: number }> {
  const prefix = '/bench/watch/';
  const sentAt = new Map<string, bigint>();
  const samples: number[] = [];
  let received = 0;
  let expected = 0;
  let allDelivered: (() => void) | undefined;
  const watches = [];
  for (let i = 0; i < WATCHERS; i++) {
    watches.push(
      await store.watchPrefix(prefix, {}, (ev) => {
        const t = sentAt.get(ev.key);
        if (t !== undefined) samples.push(Number(process.hrtime.bigint() - t) / 1e6);
        if (++received >= expected) allDelivered?.();
      }),
    );
  }
  try {
    // One put at a time, each fanned out to every watcher before the next: latency without queueing behind earlier puts.
    for (let i = 0; i < WATCH_PUTS; i++) {
      const key = `${prefix}${i}`;
      expected = (i + 1) * WATCHERS;
      const delivered = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`put ${i}: ${expected - received} of ${WATCHERS} watchers got no event within 30 s`)), 30_000);
        allDelivered = () => (clearTimeout(timer), resolve());
      });
      sentAt.set(key, process.hrtime.bigint());
      await store.put(key, value);
      if (received >= expected) allDelivered!();
      await delivered;
    }
  } finally {
    await Promise.all(watches.map((w) => w.cancel()));
  }
  samples.sort((a, b) => a - b);
  return { p50: percentile(samples, 50), p99: percentile(samples, 99) };
}

/** Every figure for one store, through the store client. */
export async function measureStore(target: StoreTarget): Promise<Figures> {
  const store = await openStore({ endpoints: target.endpoints, tls: target.tls, timeoutMs: 30_000 });
  try {
    for (let i = 0; i < 200; i++) await store.put(`/bench/warm/${i}`, value); // warm-up: connection, caches
    const putC1 = await rate(OPS, 1, (i) => store.put(`/bench/c1/${String(i).padStart(5, '0')}`, value));
    const putC64 = await rate(OPS, 64, (i) => store.put(`/bench/c64/${String(i).padStart(5, '0')}`, value));
    const getC64 = await rate(OPS, 64, (i) => store.get(`/bench/c64/${String(i % OPS).padStart(5, '0')}`));
    // The 10k keys written at concurrency 64 are the range.
    const first = await store.getPrefix('/bench/c64/');
    if (first.count !== RANGE_KEYS) throw new Error(`range benchmark expects ${RANGE_KEYS} keys, found ${first.count}`);
    let ranges = 0;
    const t0 = process.hrtime.bigint();
    const until = t0 + BigInt(RANGE_SECONDS * 1e9);
    while (process.hrtime.bigint() < until) {
      await store.getPrefix('/bench/c64/');
      ranges++;
    }
    const range10k = ranges / (Number(process.hrtime.bigint() - t0) / 1e9);
    const w = await watchLatency(store);
    return { putC1, putC64, getC64, range10k, watchP50: w.p50, watchP99: w.p99 };
  } finally {
    await store.close();
  }
}

/** Puts one at a time and 64 in flight, only: the figures the synchronous setting changes. */
async function measurePuts(target: StoreTarget): Promise<{ c1: number; c64: number }> {
  const store = await openStore({ endpoints: target.endpoints, tls: target.tls, timeoutMs: 30_000 });
  try {
    for (let i = 0; i < 200; i++) await store.put(`/bench/warm/${i}`, value);
    const c1 = await rate(OPS / 2, 1, (i) => store.put(`/bench/c1/${i}`, value));
    const c64 = await rate(OPS, 64, (i) => store.put(`/bench/c64/${i}`, value));
    return { c1, c64 };
  } finally {
    await store.close();
  }
}

async function measureOn(start: () => Promise<StoreTarget>): Promise<Figures> {
  const target = await start();
  try {
    return await measureStore(target);
  } finally {
    await target.stop();
  }
}

const bench: Benchmark = {
  names: ['store.put.c1', 'store.put.c64', 'store.get.c64', 'store.range.10k', 'store.watch.p99_ms', 'store.watch.p50_ms', 'store.sync_full.put.c1', 'store.sync_full.put.c64'],
  async run(): Promise<BenchResult[]> {
    const only = process.env.STORE_BENCH_TARGETS ?? 'etcd,embedded';
    const none: Figures = { putC1: 0, putC64: 0, getC64: 0, range10k: 0, watchP50: 0, watchP99: 0 };
    const etcd = only.includes('etcd') ? await measureOn(startEtcdTarget) : none;
    const embedded = only.includes('embedded') ? await measureOn(() => startEmbeddedChild({ synchronous: 'FULL' })) : none;
    // The price of durability: the same embedded store with synchronous=NORMAL (no fsync per commit; a power loss may
    // lose the last acknowledged writes, a process crash does not). trustplane runs FULL.
    let normal = { c1: 0, c64: 0 };
    if (only.includes('embedded')) {
      const t = await startEmbeddedChild({ synchronous: 'NORMAL' });
      try {
        normal = await measurePuts(t);
      } finally {
        await t.stop();
      }
    }
    const anchor = 'etcd 3.4 single member';
    const conf = {
      anchor_detail: 'Debian etcd 3.4, 1 member, own process, mTLS; same client, same run',
      embedded: 'own process (bench/store-server-child.ts), mTLS, SQLite WAL synchronous=FULL',
      client: 'npm etcd3 via trustplane store client',
      ops: OPS,
    };
    return [
      result('store.put.c1', embedded.putC1, 'puts/s', anchor, etcd.putC1, conf),
      result('store.put.c64', embedded.putC64, 'puts/s', anchor, etcd.putC64, conf),
      result('store.get.c64', embedded.getC64, 'gets/s', anchor, etcd.getC64, conf),
      result('store.range.10k', embedded.range10k, 'ranges/s', anchor, etcd.range10k, { ...conf, keys: RANGE_KEYS, value_bytes: value.length }),
      result('store.watch.p99_ms', embedded.watchP99, 'ms', anchor, etcd.watchP99, {
        ...conf,
        watchers: WATCHERS,
        puts: WATCH_PUTS,
        p50_ms: Math.round(embedded.watchP50 * 1000) / 1000,
        anchor_p50_ms: Math.round(etcd.watchP50 * 1000) / 1000,
      }),
      result('store.watch.p50_ms', embedded.watchP50, 'ms', anchor, etcd.watchP50, { ...conf, watchers: WATCHERS, puts: WATCH_PUTS }),
      result('store.sync_full.put.c1', embedded.putC1, 'puts/s', 'embedded, synchronous=NORMAL', normal.c1, { detail: 'the cost of an fsync per commit' }),
      result('store.sync_full.put.c64', embedded.putC64, 'puts/s', 'embedded, synchronous=NORMAL', normal.c64, { detail: 'group commit shares each fsync' }),
    ];
  },
};

export default bench;
