// Progress of a long CLI wait on standard error: one line redrawn in place on a terminal, plain lines otherwise.
//
// On a TTY each update rewrites the line (carriage return, erase line), cut to the terminal's width so that it never
// wraps (a wrapped line cannot be redrawn). Without a TTY (a log, CI, a pipe) a line is written at the first update, on
// each milestone and at most every few seconds in between, so that logs stay short and still show that it moves.
// Nothing goes to standard output: `-o json` stays one JSON document there.
import { formatDuration } from '../util/duration.js';
import { escapeForTerminal } from './output.js';

export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  /** Where the progress goes; standard error by default. */
  stream?: ProgressStream;
  /** Overrides the stream's isTTY (tests). */
  tty?: boolean;
  /** Without a TTY, a plain line at most this often between milestones. */
  plainEveryMs?: number;
  /** Milliseconds now (tests move it). */
  now?: () => number;
}

const ERASE_LINE = '\r\x1b[2K';

export class ProgressLine {
  private readonly stream: ProgressStream;
  private readonly tty: boolean;
  private readonly plainEveryMs: number;
  private readonly now: () => number;
  private shown = '';
  private lastPlainAt: number | undefined;
  private lastPlain = '';

  constructor(o: ProgressOptions = {}) {
    this.stream = o.stream ?? process.stderr;
    this.tty = o.tty ?? !!this.stream.isTTY;
    this.plainEveryMs = o.plainEveryMs ?? 5000;
    this.now = o.now ?? Date.now;
  }

  get isTTY(): boolean {
    return this.tty;
  }

  /** The current state. `milestone`: something worth a plain line of its own (a count reached, a phase changed). */
  update(text: string, o: { milestone?: boolean } = {}): void {
    const line = escapeForTerminal(text);
    if (this.tty) {
      // A pseudo-terminal that was never given a size reports 0 columns: take the usual 80 then.
      const width = Math.max(20, (this.stream.columns || Number(process.env.COLUMNS) || 80) - 1);
      const cut = line.length > width ? `${line.slice(0, width - 1)}…` : line;
      if (cut === this.shown) return;
      this.stream.write(`${ERASE_LINE}${cut}`);
      this.shown = cut;
      return;
    }
    const t = this.now();
    const due = this.lastPlainAt === undefined || t - this.lastPlainAt >= this.plainEveryMs;
    if ((o.milestone && line !== this.lastPlain) || (due && line !== this.lastPlain)) {
      this.stream.write(`${line}\n`);
      this.lastPlainAt = t;
      this.lastPlain = line;
    }
  }

  /** A line that stays (an event), written above the progress line, which is drawn again below it. */
  log(text: string): void {
    if (this.tty && this.shown) this.stream.write(`${ERASE_LINE}${text}\n${this.shown}`);
    else this.stream.write(`${text}\n`);
  }

  /** Ends the progress: on a TTY the line is erased (or replaced by `final`); otherwise `final` is written as a line. */
  done(final?: string): void {
    if (this.tty && this.shown) this.stream.write(ERASE_LINE);
    this.shown = '';
    if (final !== undefined) this.stream.write(`${escapeForTerminal(final)}\n`);
  }
}

/**
 * Time left from the rate so far: `done` of `total` since `startedAt` (after `doneAtStart` were already done). Undefined
 * until something has moved, since no rate is known before.
 */
export function estimateSecondsLeft(done: number, total: number, startedAt: number, now: number, doneAtStart = 0): number | undefined {
  const moved = done - doneAtStart;
  const elapsed = (now - startedAt) / 1000;
  if (moved <= 0 || elapsed <= 0 || done >= total) return done >= total ? 0 : undefined;
  return Math.ceil(((total - done) * elapsed) / moved);
}

/** ", about 1m20s left" (", about 20s left"), or nothing when there is no estimate or nothing left. */
export function timeLeft(secondsLeft: number | undefined): string {
  return secondsLeft === undefined || secondsLeft === 0 ? '' : `, about ${secondsLeft < 60 ? `${secondsLeft}s` : formatDuration(secondsLeft)} left`;
}

/** "12/30 (40%), about 1m20s left" — the counts, and the time left once there is a rate. */
export function countsLine(done: number, total: number, secondsLeft: number | undefined): string {
  const pct = total > 0 ? Math.floor((done * 100) / total) : 100;
  return `${done}/${total} (${pct}%)${timeLeft(secondsLeft)}`;
}
