// The children of `trustplane up` that the rest depends on (the CA service, the control plane host), restarted when they
// die as systemd's Restart=on-failure does: after 1 s, 2 s, 4 s ... up to a cap, the delay reset once a child ran stably.
import type { ChildProcess } from 'node:child_process';

export interface RestartPolicy {
  /** Delay before the first restart after a stable run. */
  initialDelayMs: number;
  /** The delay doubles with each quick failure up to this. */
  maxDelayMs: number;
  /** A child that ran this long before dying counts as having run stably: the next restart waits initialDelayMs again. */
  stableAfterMs: number;
}

/** As systemd's RestartSec=1 with RestartSteps up to RestartMaxDelaySec=30, and a run of 10 s counted as stable. */
export const DEFAULT_RESTART_POLICY: RestartPolicy = { initialDelayMs: 1000, maxDelayMs: 30_000, stableAfterMs: 10_000 };

/** The delay before the `n`th restart in a row (n ≥ 1): initialDelayMs, then twice as long each time, up to maxDelayMs. */
export function restartDelayMs(p: RestartPolicy, n: number): number {
  return Math.min(p.maxDelayMs, p.initialDelayMs * 2 ** Math.min(Math.max(0, n - 1), 30));
}

/** Which restart in a row the next one is, after a run of `ranMs` ended in a failure: the first again after a stable run. */
export function restartsInARow(p: RestartPolicy, previous: number, ranMs: number): number {
  return ranMs >= p.stableAfterMs ? 1 : previous + 1;
}

/**
 * Restart=on-failure: a non-zero exit code or a signal other than the ones that ask for a clean stop. A child that
 * exited 0, or was stopped with SIGTERM/SIGINT/SIGHUP/SIGPIPE by someone else, was meant to stop: it is not restarted.
 */
export function isFailure(code: number | null, signal: NodeJS.Signals | null): boolean {
  if (signal) return !['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGPIPE'].includes(signal);
  return code !== 0;
}

export function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `signal ${signal}` : `exit code ${code}`;
}

const delayText = (ms: number) => (ms < 1000 ? `${ms} ms` : `${Number.isInteger(ms / 1000) ? ms / 1000 : (ms / 1000).toFixed(1)} s`);

export interface Timers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}
const realTimers: Timers = { set: (fn, ms) => setTimeout(fn, ms), clear: (h) => clearTimeout(h as NodeJS.Timeout) };

export interface SupervisedChildOptions {
  /** "the CA service": how messages name it. */
  what: string;
  /** Where its output goes, named in messages. */
  logFile: string;
  /** Starts it and resolves once it serves (rejects when it did not come up). */
  start(): Promise<ChildProcess>;
  /** Stops one of its processes (SIGTERM, then SIGKILL after a while). */
  stopChild(child: ChildProcess): Promise<void>;
  progress(msg: string): void;
  /** Called once when it stopped on its own in a way that is not restarted (it exited 0 or was asked to stop). */
  onGaveUp(why: string): void;
  policy?: RestartPolicy;
  /** The restart delay's timer; tests pass their own to run it when they choose. */
  timers?: Timers;
}

export class SupervisedChild {
  private child: ChildProcess | undefined;
  private startedAt = 0;
  /** Restarts in a row without a stable run between them. */
  private restarts = 0;
  private stopping = false;
  private timer: unknown;
  private restarting: Promise<void> | undefined;
  private readonly policy: RestartPolicy;
  private readonly timers: Timers;

  constructor(private readonly o: SupervisedChildOptions) {
    this.policy = o.policy ?? DEFAULT_RESTART_POLICY;
    this.timers = o.timers ?? realTimers;
  }

  /** The process running now, if any. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The first start: its failure is the caller's (nothing is restarted before the child has served once). */
  async start(): Promise<void> {
    this.watch(await this.o.start());
  }

  private watch(child: ChildProcess): void {
    this.child = child;
    this.startedAt = Date.now();
    child.once('exit', (code, signal) => {
      if (this.stopping || this.child !== child) return;
      this.child = undefined;
      const ran = Date.now() - this.startedAt;
      if (!isFailure(code, signal)) {
        this.o.progress(`${this.o.what} exited (${describeExit(code, signal)}) and is not restarted; see ${this.o.logFile}`);
        this.o.onGaveUp(`${this.o.what} stopped`);
        return;
      }
      this.restarts = restartsInARow(this.policy, this.restarts, ran);
      this.scheduleRestart(`${this.o.what} exited (${describeExit(code, signal)})`);
    });
  }

  private scheduleRestart(what: string): void {
    const delay = restartDelayMs(this.policy, this.restarts);
    this.o.progress(`${what}; restarting in ${delayText(delay)} (log: ${this.o.logFile})`);
    this.timer = this.timers.set(() => {
      this.timer = undefined;
      this.restarting = this.restart();
    }, delay);
  }

  private async restart(): Promise<void> {
    if (this.stopping) return;
    let child: ChildProcess;
    try {
      child = await this.o.start();
    } catch (e) {
      if (this.stopping) return;
      // A start that failed is one more restart in a row: the next waits twice as long.
      this.restarts += 1;
      this.scheduleRestart(`${this.o.what} did not come back (${(e as Error).message})`);
      return;
    }
    if (this.stopping) {
      await this.o.stopChild(child);
      return;
    }
    this.watch(child);
    this.o.progress(`${this.o.what} restarted (pid ${child.pid})`);
  }

  /**
   * From now on an exit is expected and neither restarted nor reported: a Ctrl-C reaches the whole process group, so
   * the children may exit before `stop()` comes to them.
   */
  expectStop(): void {
    this.stopping = true;
    if (this.timer !== undefined) this.timers.clear(this.timer);
    this.timer = undefined;
  }

  /** Stops it for good: no restart is pending or started after this resolves. */
  async stop(): Promise<void> {
    this.expectStop();
    await this.restarting?.catch(() => undefined);
    if (this.child) await this.o.stopChild(this.child);
  }
}
