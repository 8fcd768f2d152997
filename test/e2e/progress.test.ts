// Progress of long CLI waits with real processes: `clusters update --complete-credential-rotation --wait` while hollow
// nodes move, `nodes simulate` and `up` while nodes join. Without a terminal: plain lines on standard error and one valid
// JSON document on standard output with -o json; on a pseudo-terminal (util-linux `script`): the line redrawn in place.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { caPaths, hostPaths } from '../../src/util/datadir.js';
import { waitFor } from '../../src/util/wait.js';
import { BIN, exited, killChild } from '../helpers/cli.js';
import { startControlPlane, type ControlPlane } from '../helpers/control-plane.js';
import { tempDir } from '../helpers/tmp.js';

const ERASE = '\r\x1b[2K';

interface Run {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  done: Promise<number | string | null>;
}

/** `trustplane ARGS` with standard output and standard error apart (neither a terminal). */
function run(args: string[], timeoutMs = 120_000): Run {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  return { child, stdout: () => out, stderr: () => err, done: exited(child, timeoutMs) };
}

/** `trustplane ARGS` on a pseudo-terminal: util-linux `script` gives it one; what the terminal shows comes back. */
function runOnPty(args: string[], timeoutMs = 120_000): Run {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const child = spawn('script', ['-qfec', [process.execPath, BIN, ...args].map(quote).join(' '), '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, COLUMNS: '200' } });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  return { child, stdout: () => out, stderr: () => out, done: exited(child, timeoutMs) };
}

const plainLines = (text: string) => {
  assert.doesNotMatch(text, /\r/, 'no carriage return without a terminal');
  return text.split('\n');
};

describe('progress on long CLI waits (real processes)', () => {
  const tmp = tempDir('tp-e2e-progress-');
  const dataDir = join(tmp.path, 'data');
  let cp: ControlPlane | undefined;
  const started: ChildProcess[] = [];
  after(async () => {
    for (const c of started) {
      // A child held with SIGSTOP must go on to hear the SIGTERM.
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGCONT');
      await killChild(c, 'SIGTERM').catch(() => killChild(c));
    }
    await cp?.stop();
    tmp.remove();
  });

  test('nodes simulate: plain lines and valid JSON without a terminal; redrawn in place on a pseudo-terminal', async () => {
    cp = await startControlPlane(dataDir);
    await cp.fleet().create({ name: 'p1' });

    const plain = run(['nodes', 'simulate', '--count', '3', '--cluster', 'p1', '--name-prefix', 'plain-', '--duration', '4s', '--data-dir', dataDir, '-o', 'json']);
    started.push(plain.child);
    assert.equal(await plain.done, 0, plain.stderr());
    const summary = JSON.parse(plain.stdout()) as { ready: number; count: number };
    assert.deepEqual([summary.ready, summary.count], [3, 3]);
    const progress = plainLines(plain.stderr()).filter((l) => /^\[\d+s\] ready \d\/3/.test(l));
    assert.ok(progress.length >= 1, plain.stderr());

    const pty = runOnPty(['nodes', 'simulate', '--count', '3', '--cluster', 'p1', '--name-prefix', 'pty-', '--duration', '4s', '--data-dir', dataDir, '-o', 'json']);
    started.push(pty.child);
    assert.equal(await pty.done, 0, pty.stdout());
    const screen = pty.stdout();
    const redraws = screen.split(ERASE).filter((s) => /^\[\d+s\] ready \d\/3/.test(s));
    assert.ok(redraws.length >= 2, `at least two redraws of the line in ${JSON.stringify(screen.slice(0, 2000))}`);
    // Redrawn, not scrolled: no progress text ends in a line break.
    for (const r of redraws) assert.doesNotMatch(r, /\n/);
    // Erased before the JSON, which stands alone after the last redraw (the terminal turns \n into \r\n).
    const json = JSON.parse(screen.slice(screen.lastIndexOf(ERASE) + ERASE.length).replace(/\r\n/g, '\n')) as { ready: number };
    assert.equal(json.ready, 3);
  });

  test('clusters update --complete-credential-rotation --wait: counts while nodes move, then completes; JSON on stdout', async () => {
    await cp!.fleet().create({ name: 'p2' });
    const sim = run(['nodes', 'simulate', '--count', '4', '--cluster', 'p2', '--name-prefix', 'mv-', '--lease-interval', '1s', '--data-dir', dataDir], 600_000);
    started.push(sim.child);
    const joined = await waitFor('4 hollow nodes ready', () => (sim.child.exitCode !== null ? 'exited' : /Hollow nodes: 4 ready, 0 failed of 4/.test(sim.stderr()) ? 'ready' : undefined), 60_000, 100);
    assert.equal(joined, 'ready', `nodes simulate exited: ${sim.stderr()}`);
    // Held still (SIGSTOP) until the waits have seen them all on the old generation: nothing races the first look.
    sim.child.kill('SIGSTOP');
    await cp!.fleet().update('p2', { startCredentialRotation: true });

    // A wait that runs out says what it waited for, with the reason Timeout.
    const short = run(['clusters', 'update', 'p2', '--complete-credential-rotation', '--wait', '--timeout', '2s', '--data-dir', dataDir]);
    started.push(short.child);
    assert.equal(await short.done, 7, short.stderr());
    assert.match(short.stderr(), /Rotation of cluster p2: nodes moved 0\/4 \(0%\); waiting for mv-\d, mv-\d, mv-\d and 1 more\n/);
    assert.match(short.stderr(), /did not complete within 0m2s: 4 node\(s\) have not moved/);

    const wait = run(['clusters', 'update', 'p2', '--complete-credential-rotation', '--wait', '--timeout', '3m', '--data-dir', dataDir, '-o', 'json'], 240_000);
    started.push(wait.child);
    await waitFor('the wait to show the nodes not moved', () => /nodes moved 0\/4/.test(wait.stderr()) || undefined, 30_000, 100);
    sim.child.kill('SIGCONT');
    assert.equal(await wait.done, 0, wait.stderr());
    const c = JSON.parse(wait.stdout()) as { rotation: { phase: string } };
    assert.equal(c.rotation.phase, 'done');
    const lines = plainLines(wait.stderr());
    assert.ok(lines.some((l) => /^Rotation of cluster p2: nodes moved 0\/4 \(0%\); waiting for /.test(l)), wait.stderr());
    assert.ok(lines.includes('Rotation of cluster p2: 4/4 nodes moved, completed.'), wait.stderr());
  });
});

describe('up: progress while its nodes join (real processes)', () => {
  const tmp = tempDir('tp-e2e-progress-up-');
  let up: Run | undefined;
  after(async () => {
    if (up) await killChild(up.child, 'SIGTERM').catch(() => killChild(up!.child));
    tmp.remove();
  });

  test('plain lines counting the nodes on stderr; -o json stays one JSON document on stdout', async () => {
    const dataDir = join(tmp.path, 'data');
    up = run(['up', '--data-dir', dataDir, '--nodes', '2', '-o', 'json'], 300_000);
    const u = up;
    const clusters = await waitFor('up to print the clusters as JSON', () => {
      if (u.child.exitCode !== null) return 'exited' as const;
      try {
        return JSON.parse(u.stdout()) as Array<{ name: string; status: string }>;
      } catch {
        return undefined;
      }
    }, 180_000, 250);
    if (clusters === 'exited') {
      const log = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8').slice(-3000) : '(none)');
      assert.fail(`up exited (${u.child.exitCode}): ${u.stderr()}\nCA log: ${log(caPaths(dataDir).log)}\nhost log: ${log(hostPaths(dataDir).log)}`);
    }
    assert.deepEqual(clusters.map((c) => [c.name, c.status]), [['demo', 'RUNNING']]);
    const lines = plainLines(u.stderr());
    assert.ok(lines.some((l) => /^==> nodes Ready and reachable: \d\/2 \(\d+%\)/.test(l)), u.stderr());
    assert.ok(lines.some((l) => /^==> node demo-node-\d is Ready and reachable through its tunnel \(2\/2\)$/.test(l)), u.stderr());
  });
});
