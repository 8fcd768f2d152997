// Fault: the host's clock jumps 400 days ahead and 2 days back: lifetime, rotation and renewal decisions as the policy says, no bursts.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { runCaProcess, type RunningCa } from '../../src/ca/process.js';
import type { ClusterView } from '../../src/ca/service.js';
import { runHost, type RunningHost } from '../../src/fleet/host.js';
import { degradation, lifetimesOf } from '../../src/fleet/lifetime.js';
import { CertificateRotation, LATE_AFTER_MS, lateRenewalDelayMs, MAX_RETRY_DELAY_MS, SPREAD_MS } from '../../src/node/rotation.js';
import { ManualClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/log.js';
import { waitFor } from '../../src/util/wait.js';
import { tempDir } from '../helpers/tmp.js';

const DAY = 86_400_000;
const YEAR = 365 * DAY;

/** A deterministic [0, 1) sequence, so the spread is the same on every run. */
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function viewWithRoot(notAfterMs: number): ClusterView {
  const notAfter = new Date(notAfterMs).toISOString();
  return {
    name: 'c',
    uid: 'u',
    createdAt: new Date(0).toISOString(),
    state: 'ready',
    authorities: [
      { kind: 'root', generations: [{ generation: 1, state: 'active', notAfter }] },
      { kind: 'etcd-api', generations: [{ generation: 1, state: 'active', notAfter: new Date(notAfterMs + 5 * YEAR).toISOString() }] },
      { kind: 'etcd-peer', generations: [{ generation: 1, state: 'active', notAfter: new Date(notAfterMs + 5 * YEAR).toISOString() }] },
    ],
  } as unknown as ClusterView;
}

describe('fault: clock jumps, at the level that decides', () => {
  const t0 = Date.parse('2030-01-01T00:00:00Z');

  it('lifetime: at t+400d a root CA expired or near expiry is DEGRADED and rotates now; 2 days back changes nothing due', () => {
    const ahead = new Date(t0 + 400 * DAY);
    const back = new Date(t0 - 2 * DAY);
    const cases = [
      { root: t0 + 380 * DAY, degraded: /the cluster root CA expired at 2031-01-16T00:00:00.000Z/, rotateNow: true },
      { root: t0 + 403 * DAY, degraded: /the cluster root CA expires at .* \(in 72 hours\)/, rotateNow: true },
      { root: t0 + 420 * DAY, degraded: undefined, rotateNow: true },
      { root: t0 + 10 * YEAR, degraded: undefined, rotateNow: false },
    ];
    for (const c of cases) {
      const view = viewWithRoot(c.root);
      const d = degradation(view, ahead);
      if (c.degraded) assert.match(d ?? '', c.degraded);
      else assert.equal(d, undefined);
      const root = lifetimesOf(view, ahead).find((l) => l.kind === 'root')!;
      assert.equal(root.next.action, 'start-rotation');
      assert.equal(root.next.at === ahead.toISOString(), c.rotateNow, `root CA ending ${new Date(c.root).toISOString()}: rotation due now at t+400d`);
      // Seen from two days back, none of them is degraded or due.
      assert.equal(degradation(view, back), undefined);
      const early = lifetimesOf(view, back).find((l) => l.kind === 'root')!;
      assert.ok(Date.parse(early.next.at) > back.getTime(), 'nothing due two days back');
      assert.ok(early.secondsLeft! > 30 * 86400);
    }
  });

  it('node renewal: a late renewal is spread over the next minutes, not made at once', () => {
    assert.equal(lateRenewalDelayMs(0, YEAR, 0.5), 0);
    assert.equal(lateRenewalDelayMs(LATE_AFTER_MS, YEAR, 0.99), 0, 'as late as a sleeping loop: at once');
    assert.equal(lateRenewalDelayMs(LATE_AFTER_MS + 1, YEAR, 0.5), SPREAD_MS / 2);
    assert.equal(lateRenewalDelayMs(400 * DAY, -DAY, 0.5), SPREAD_MS / 2, 'an expired one is spread too');
    // Never past a quarter of the time left.
    assert.equal(lateRenewalDelayMs(DAY, 60_000, 0.999), 14_985);
  });

  /** `n` rotations of 1-year certificates issued over one hour from t0, each renewal counted. */
  function fleet(n: number, clock: ManualClock, o: { fail?: () => boolean } = {}) {
    const random = seeded(7);
    const renewed: number[] = [];
    const expired: number[] = [];
    const rotations = Array.from({ length: n }, (_, i) => {
      let cert = { notBefore: new Date(t0 + i * 18_000), notAfter: new Date(t0 + i * 18_000 + YEAR) };
      return new CertificateRotation({
        what: `client certificate ${i}`,
        clock,
        log: silentLogger,
        pollMs: 5,
        random,
        current: () => cert,
        renew: async () => {
          if (o.fail?.()) throw new Error('the CA service is unreachable');
          renewed.push(clock.now().getTime());
          const now = clock.now().getTime();
          cert = { notBefore: new Date(now), notAfter: new Date(now + YEAR) };
        },
        onExpired: async () => {
          expired.push(clock.now().getTime());
          const now = clock.now().getTime();
          cert = { notBefore: new Date(now), notAfter: new Date(now + YEAR) };
        },
      });
    });
    return { rotations, renewed, expired };
  }

  /** Moves the clock in steps and lets every loop look at it (each step waits until every loop has caught up). */
  async function stepThrough(clock: ManualClock, f: ReturnType<typeof fleet>, steps: number, stepMs: number, done: () => number): Promise<number[]> {
    const perStep: number[] = [];
    for (let s = 0; s < steps; s++) {
      const before = done();
      clock.advance(stepMs);
      const now = clock.now().getTime();
      // Every loop whose time has come has done its work: none is left with a spread point at or before now.
      await waitFor('the renewal loops to catch up', () => f.rotations.every((r) => (r.spreadUntil?.getTime() ?? Infinity) > now) || undefined, 20_000, 5);
      perStep.push(done() - before);
    }
    return perStep;
  }

  it('node renewal: 200 nodes jumped 330 days ahead renew over ten minutes, not in one second; 2 days back starts none', async () => {
    const clock = new ManualClock(t0 + 3600_000);
    const f = fleet(200, clock);
    try {
      for (const r of f.rotations) r.start();
      clock.set(t0 + 330 * DAY);
      // Every loop has looked and put its renewal off: none renewed in the instant of the jump.
      await waitFor('every loop to spread its late renewal (or make it)', () => f.rotations.filter((r) => r.spreadUntil).length + f.renewed.length >= 200 || undefined, 20_000, 5);
      assert.ok(f.renewed.length <= 2, `renewed at the jump: ${f.renewed.length}`);
      const perMinute = await stepThrough(clock, f, 11, 60_000, () => f.renewed.length);
      assert.equal(f.renewed.length, 200, 'all renewed within the spread window');
      assert.ok(Math.max(...perMinute) <= 40, `renewals per minute: ${perMinute.join(' ')}`);

      // Two days back: the fresh certificates are not due, the late ones were renewed: nothing moves.
      const count = f.renewed.length;
      clock.advance(-2 * DAY);
      const now = clock.now().getTime();
      await waitFor('every loop to look at the clock set back', () => f.rotations.every((r) => r.renewAt().getTime() > now) || undefined, 20_000, 5);
      clock.advance(60_000);
      await stepThrough(clock, f, 3, 60_000, () => f.renewed.length);
      assert.equal(f.renewed.length, count, 'no renewal after the clock went back');
    } finally {
      await Promise.all(f.rotations.map((r) => r.stop()));
    }
  });

  it('node renewal: 400 days ahead, past expiry, the rejoins are spread as well', async () => {
    const clock = new ManualClock(t0 + 3600_000);
    const f = fleet(100, clock);
    try {
      for (const r of f.rotations) r.start();
      clock.set(t0 + 400 * DAY);
      await waitFor('every loop to spread its late rejoin (or make it)', () => f.rotations.filter((r) => r.spreadUntil).length + f.expired.length >= 100 || undefined, 20_000, 5);
      assert.ok(f.expired.length <= 2, `rejoined at the jump: ${f.expired.length}`);
      const perMinute = await stepThrough(clock, f, 11, 60_000, () => f.expired.length);
      assert.equal(f.expired.length, 100);
      assert.equal(f.renewed.length, 0);
      assert.ok(Math.max(...perMinute) <= 25, `rejoins per minute: ${perMinute.join(' ')}`);
    } finally {
      await Promise.all(f.rotations.map((r) => r.stop()));
    }
  });

  it('node renewal: a retry pending when the clock goes 2 days back comes within the longest retry wait, not 2 days later', async () => {
    const clock = new ManualClock(t0 + 0.95 * YEAR);
    let failing = true;
    let attempts = 0;
    const f = fleet(1, clock, {
      fail: () => {
        attempts++;
        return failing;
      },
    });
    const [r] = f.rotations;
    try {
      // Far past its renewal point (70-90 %): the first attempt is spread, then fails.
      r.start();
      await waitFor('the late renewal to be spread', () => r.spreadUntil ?? undefined, 20_000, 5);
      clock.set(r.spreadUntil!);
      await waitFor('the first renewal attempt to fail', () => r.lastError, 20_000, 5);
      failing = false;
      // Still past the renewal point after going back: only the pending retry stands between it and renewal.
      clock.advance(-2 * DAY);
      assert.ok(clock.now().getTime() > r.renewAt().getTime());
      const back = clock.now().getTime();
      // The clock moves on in 10 s steps, each one given to the loop (it wakes every 5 ms) before the next.
      await waitFor(
        'the retry after the clock went back',
        () => {
          if (f.renewed.length === 1) return true;
          if (clock.now().getTime() - back < MAX_RETRY_DELAY_MS + 10_000) clock.advance(10_000);
          return undefined;
        },
        20_000,
        20,
      );
      assert.ok(f.renewed[0] - back <= MAX_RETRY_DELAY_MS + 10_000, `retried ${(f.renewed[0] - back) / 1000} s of clock time after it went back`);
      assert.equal(attempts, 2);
    } finally {
      await r.stop();
    }
  });
});

describe('fault: clock jumps, through the running lifetime controller (CA service and host on one moved clock)', { timeout: 90_000 }, () => {
  const tmp = tempDir('tp-fault-clock-');
  const dataDir = join(tmp.path, 'data');
  const clock = new ManualClock(Date.now());
  let ca: RunningCa | undefined;
  let host: RunningHost | undefined;
  const lines: Array<{ msg: string; cluster?: string; status?: string; authority?: string; trigger?: string }> = [];
  after(async () => {
    await host?.stop();
    await ca?.stop();
    tmp.remove();
  });

  it('t+400d: expired and near-expiry roots are DEGRADED and rotated once each; 2 days back: no new rotation, no status flapping', async () => {
    ca = await runCaProcess({ dataDir, clock, csrWorkers: 0 });
    // Each look of the lifetime controller describes every cluster at the CA service: counted per cluster.
    const looks = new Map<string, number>();
    const describe = ca.service.describe.bind(ca.service);
    ca.service.describe = (name: string) => {
      looks.set(name, (looks.get(name) ?? 0) + 1);
      return describe(name);
    };
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l));
        done();
      },
    });
    host = await runHost({ dataDir, clock, lifetimeIntervalMs: 100, log: pino({ level: 'info' }, sink) });
    const f = host.fleet;
    const clusters = { gone: 380, late: 403, soon: 420, fine: 3650 };
    for (const [name, days] of Object.entries(clusters)) await f.create({ name, lifetimes: { root: days * 86400 } });
    const status = async (name: string) => (await f.describe(name)).status;
    await waitFor('every cluster to run', async () => {
      for (const n of Object.keys(clusters)) if ((await status(n)) !== 'RUNNING') return undefined;
      return true;
    }, 60_000, 100);
    /** Waits until the controller has looked at every cluster `n` more times. */
    const lookedAgain = async (n: number) => {
      const from = new Map(looks);
      await waitFor(`${n} more looks of the lifetime controller`, () => Object.keys(clusters).every((c) => (looks.get(c) ?? 0) >= (from.get(c) ?? 0) + n) || undefined, 30_000, 20);
    };
    const started = () => lines.filter((l) => l.msg === 'credential rotation started');

    // Two days back from the start: nothing is due.
    clock.advance(-2 * DAY);
    await lookedAgain(3);
    assert.equal(started().length, 0);
    for (const n of Object.keys(clusters)) assert.equal(await status(n), 'RUNNING');

    // 400 days ahead: "gone" expired, "late" has 3 days left (DEGRADED), "soon" 20 days (rotates), "fine" 9 years.
    clock.advance(402 * DAY);
    await waitFor('the three rotations to complete', async () => {
      for (const n of ['gone', 'late', 'soon']) if ((await f.describe(n)).rotation?.phase !== 'done') return undefined;
      return true;
    }, 60_000, 100).catch(async (e: Error) => {
      const now = await Promise.all(['gone', 'late', 'soon'].map(async (n) => { const d = await f.describe(n); return `${n}: ${d.status} ${d.statusMessage} rotation ${d.rotation?.phase ?? 'none'}`; }));
      throw new Error(`${e.message}\n${now.join('\n')}\nlog: ${lines.filter((l) => l.cluster).slice(-15).map((l) => JSON.stringify(l)).join('\n')}`);
    });
    const degraded = lines.filter((l) => l.status === 'DEGRADED').map((l) => l.cluster).sort();
    assert.deepEqual(degraded, ['gone', 'late'], 'DEGRADED was said for the expired and the 3-day root CA');
    assert.deepEqual(started().map((l) => `${l.cluster}/${l.authority}/${l.trigger}`).sort(), ['gone/root/automatic', 'late/root/automatic', 'soon/root/automatic']);
    for (const n of ['gone', 'late', 'soon']) {
      const d = await f.describe(n);
      assert.equal(d.status, 'RUNNING', `${n} after its rotation: ${d.statusMessage}`);
      const root = d.authorities.find((a) => a.kind === 'root')!;
      assert.deepEqual(root.generations.map((g) => g.state), ['retired', 'active']);
    }
    assert.equal(await status('fine'), 'RUNNING');

    // The status log line can come a moment after describe says RUNNING: count from once each said it.
    const lastStatus = (n: string) => lines.filter((l) => l.cluster === n && l.status).at(-1)?.status;
    await waitFor('each rotated cluster to log RUNNING', () => ['gone', 'late', 'soon'].every((n) => lastStatus(n) === 'RUNNING') || undefined, 30_000, 20);
    // Two days back again: the new generations are young; nothing starts, nobody flips status.
    const statusLines = lines.filter((l) => l.status).length;
    clock.advance(-2 * DAY);
    await lookedAgain(5);
    assert.equal(started().length, 3, 'no rotation started after the clock went back');
    assert.equal(lines.filter((l) => l.status).length, statusLines, `no status change after the clock went back: ${lines.filter((l) => l.status).slice(statusLines).map((l) => JSON.stringify(l)).join('\n')}`);
  });
});
