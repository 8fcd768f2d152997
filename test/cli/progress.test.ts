// The progress line of long CLI waits: redrawn in place on a terminal (carriage return, erase line, never wider than
// the terminal), plain lines otherwise (the first, each milestone, then at most every few seconds), and its estimate.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { countsLine, estimateSecondsLeft, ProgressLine } from '../../src/cli/progress.js';

const ERASE = '\r\x1b[2K';
function sink(isTTY: boolean, columns = 80) {
  const chunks: string[] = [];
  return { chunks, text: () => chunks.join(''), stream: { isTTY, columns, write: (s: string) => chunks.push(s) } };
}

describe('progress line', () => {
  test('on a TTY: each change redraws the line in place; unchanged text is not written again; done erases it', () => {
    const out = sink(true);
    const line = new ProgressLine({ stream: out.stream });
    assert.equal(line.isTTY, true);
    line.update('ready 1/3');
    line.update('ready 1/3');
    line.update('ready 2/3');
    line.done();
    assert.deepEqual(out.chunks, [`${ERASE}ready 1/3`, `${ERASE}ready 2/3`, ERASE]);
    assert.doesNotMatch(out.text(), /\n/);
  });

  test('on a TTY: cut to the terminal width (a wrapped line cannot be redrawn); an event goes above and the line is drawn again', () => {
    const out = sink(true, 30);
    const line = new ProgressLine({ stream: out.stream });
    line.update('x'.repeat(100));
    assert.equal(out.chunks[0], `${ERASE}${'x'.repeat(28)}…`);
    line.update('nodes 1/2');
    line.log('==> node a is Ready');
    assert.equal(out.chunks.at(-1), `${ERASE}==> node a is Ready\nnodes 1/2`);
    line.done('all done');
    assert.deepEqual(out.chunks.slice(-2), [ERASE, 'all done\n']);
  });

  test('without a TTY: the first line, milestones, then at most one line per interval; never a carriage return', () => {
    let now = 0;
    const out = sink(false);
    const line = new ProgressLine({ stream: out.stream, plainEveryMs: 5000, now: () => now });
    assert.equal(line.isTTY, false);
    line.update('ready 0/4');
    now = 1000;
    line.update('ready 1/4'); // within the interval: not written
    now = 2000;
    line.update('ready 2/4', { milestone: true }); // a milestone: written
    now = 3000;
    line.update('ready 2/4', { milestone: true }); // the same again: not written
    now = 7500;
    line.update('ready 3/4'); // the interval is over: written
    now = 13000;
    line.update('ready 3/4'); // unchanged: not written
    line.log('an event');
    line.done('done: 4/4');
    assert.equal(out.text(), 'ready 0/4\nready 2/4\nready 3/4\nan event\ndone: 4/4\n');
  });

  test('what is shown is escaped: a name cannot move the cursor or clear the screen', () => {
    const out = sink(false);
    new ProgressLine({ stream: out.stream }).update('node \x1b[2Jevil\r');
    assert.equal(out.text(), 'node \\x1b[2Jevil\\r\n');
  });

  test('time left from the rate so far; none before anything moved', () => {
    assert.equal(estimateSecondsLeft(0, 10, 0, 5000), undefined);
    assert.equal(estimateSecondsLeft(5, 10, 0, 10_000), 10);
    assert.equal(estimateSecondsLeft(6, 10, 0, 10_000, 4), 20); // 2 moved in 10 s, 4 to go
    assert.equal(estimateSecondsLeft(10, 10, 0, 10_000), 0);
    assert.equal(countsLine(3, 12, 95), '3/12 (25%), about 1m35s left');
    assert.equal(countsLine(3, 12, 20), '3/12 (25%), about 20s left');
    assert.equal(countsLine(0, 12, undefined), '0/12 (0%)');
  });
});
