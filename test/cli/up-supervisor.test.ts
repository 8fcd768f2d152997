// The restart policy of `trustplane up`'s supervised children (Restart=on-failure with a doubling, capped, resetting
// delay) as pure decisions, and the supervisor on real short-lived processes.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, describe, test } from 'node:test';
import { describeExit, isFailure, restartDelayMs, restartsInARow, SupervisedChild, DEFAULT_RESTART_POLICY, type RestartPolicy, type Timers } from '../../src/cli/up-supervisor.js';
import { waitFor } from '../../src/util/wait.js';
import { isAlive, killChild } from '../helpers/cli.js';

describe('restart policy', () => {
  test('1 s, 2 s, 4 s ... capped at 30 s', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 40].map((n) => restartDelayMs(DEFAULT_RESTART_POLICY, n)), [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  });

  test('a failure after a stable run is the first restart again; a quick one counts up', () => {
    const p = DEFAULT_RESTART_POLICY;
    assert.equal(restartsInARow(p, 0, 50), 1, 'the first failure ever');
    assert.equal(restartsInARow(p, 1, 50), 2);
    assert.equal(restartsInARow(p, 5, p.stableAfterMs - 1), 6);
    assert.equal(restartsInARow(p, 5, p.stableAfterMs), 1, 'it ran stably: back to 1 s');
  });

  test('on-failure: a non-zero exit or a signal such as SIGKILL restarts; exit 0 and SIGTERM/SIGINT do not', () => {
    assert.equal(isFailure(1, null), true);
    assert.equal(isFailure(null, 'SIGKILL'), true);
    assert.equal(isFailure(null, 'SIGSEGV'), true);
    assert.equal(isFailure(0, null), false);
    assert.equal(isFailure(null, 'SIGTERM'), false);
    assert.equal(isFailure(null, 'SIGINT'), false);
    assert.equal(describeExit(null, 'SIGKILL'), 'signal SIGKILL');
    assert.equal(describeExit(3, null), 'exit code 3');
  });
});

describe('SupervisedChild (real processes)', () => {
  const started: ChildProcess[] = [];
  after(async () => {
    for (const c of started) await killChild(c);
  });
  const policy: RestartPolicy = { initialDelayMs: 20, maxDelayMs: 80, stableAfterMs: 60_000 };
  /** A child that runs until killed, or exits with `code` at once when `failNext` says so. */
  const make = (o: { failStarts?: number; timers?: Timers } = {}) => {
    let failStarts = o.failStarts ?? 0;
    const messages: string[] = [];
    let gaveUp = 0;
    const sup = new SupervisedChild({
      what: 'the test child',
      logFile: '/dev/null',
      policy,
      timers: o.timers,
      progress: (m) => messages.push(m),
      onGaveUp: () => (gaveUp += 1),
      stopChild: (c) => killChild(c, 'SIGTERM'),
      start: async () => {
        if (started.length > 0 && failStarts-- > 0) throw new Error('it exited during start-up');
        const c = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
        started.push(c);
        await new Promise((r) => c.once('spawn', r));
        return c;
      },
    });
    return { sup, messages, gaveUp: () => gaveUp };
  };

  test('killed with -9, it is restarted; a failed start doubles the delay; stop() leaves nothing running', async () => {
    const { sup, messages, gaveUp } = make({ failStarts: 2 });
    await sup.start();
    const first = sup.pid!;
    process.kill(first, 'SIGKILL');
    await waitFor('the restart', () => (sup.pid !== undefined && sup.pid !== first ? true : undefined), 10000, 10);
    assert.deepEqual(messages, [
      'the test child exited (signal SIGKILL); restarting in 20 ms (log: /dev/null)',
      'the test child did not come back (it exited during start-up); restarting in 40 ms (log: /dev/null)',
      'the test child did not come back (it exited during start-up); restarting in 80 ms (log: /dev/null)',
      `the test child restarted (pid ${sup.pid})`,
    ]);
    assert.equal(gaveUp(), 0);
    const second = sup.pid!;
    await sup.stop();
    assert.equal(isAlive(second), false, 'the running child was stopped');
    assert.equal(sup.pid === undefined || !isAlive(sup.pid), true);
  });

  test('a child that exits 0 on its own is not restarted: the supervisor gives up and says so', async () => {
    const { sup, messages, gaveUp } = make();
    await sup.start();
    process.kill(sup.pid!, 'SIGTERM');
    await waitFor('give-up', () => (gaveUp() === 1 ? true : undefined), 10000, 10);
    assert.match(messages.join('\n'), /the test child exited \(signal SIGTERM\) and is not restarted/);
    await sup.stop();
  });

  test('after expectStop() (a Ctrl-C reaches every child at once), an exit is neither restarted nor reported', async () => {
    const { sup, messages, gaveUp } = make();
    await sup.start();
    const n = started.length;
    const pid = sup.pid!;
    sup.expectStop();
    process.kill(pid, 'SIGKILL');
    await waitFor('the child to exit', () => (!isAlive(pid) ? true : undefined), 10000, 10);
    await sup.stop();
    assert.deepEqual(messages, [], 'nothing said of an expected exit');
    assert.equal(gaveUp(), 0);
    assert.equal(started.length, n, 'not restarted');
  });

  test('stop() during the restart delay cancels the restart', async () => {
    // The delay's timer is held here: it fires when the test says, even after stop() (as a timer that was not cancelled would).
    const pending: Array<() => void> = [];
    let cleared = 0;
    const { sup, messages } = make({ timers: { set: (fn) => pending.push(fn), clear: () => (cleared += 1) } });
    await sup.start();
    const n = started.length;
    process.kill(sup.pid!, 'SIGKILL');
    await waitFor('the restart to be scheduled', () => (pending.length === 1 ? true : undefined), 10000, 5);
    assert.match(messages[0], /restarting in 20 ms/);
    await sup.stop();
    assert.equal(cleared, 1, 'stop() cancelled the timer');
    // A restart would spawn its child before its first await: had stop() not guarded it, it would be counted here.
    pending[0]();
    assert.equal(started.length, n, 'no child started after stop()');
  });
});
