// When to renew a certificate (a random point between 70 % and 90 % of its lifetime) and the loop that does it on time.
//
// The point is drawn once per certificate, so restarts do not move it earlier and a fleet issued at the same moment
// does not renew in step (as the kubelet's certificate manager). Time is read from the injected Clock; the loop wakes at
// least every `pollMs` to look at it, so a clock that jumps (a test's, a suspended laptop's) is noticed.
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/log.js';

export const RENEW_FROM = 0.7;
export const RENEW_TO = 0.9;

/** notBefore + (70 % .. 90 %) of the lifetime; `random` in [0, 1). */
export function renewalTime(notBefore: Date, notAfter: Date, random: number = Math.random()): Date {
  const life = notAfter.getTime() - notBefore.getTime();
  const r = Math.min(Math.max(random, 0), 1);
  return new Date(notBefore.getTime() + life * (RENEW_FROM + (RENEW_TO - RENEW_FROM) * r));
}

/** The longest wait between attempts after failures. */
export const MAX_RETRY_DELAY_MS = 300_000;

/** Delay before the next attempt after `failures` failed ones: 1 s doubling, at most 5 min, never past the expiry. */
export function retryDelayMs(failures: number, msToExpiry: number): number {
  const step = Math.min(MAX_RETRY_DELAY_MS, 1000 * 2 ** Math.min(failures, 20));
  return Math.max(1000, Math.min(step, msToExpiry > 0 ? msToExpiry / 4 : step));
}

/** Found this late (the clock jumped ahead, the machine slept), a renewal is spread rather than made at once. */
export const LATE_AFTER_MS = 10 * 60_000;
/** The window a late renewal is spread over: every node whose clock jumped would otherwise ask in the same second. */
export const SPREAD_MS = 10 * 60_000;

/**
 * When a renewal found `lateByMs` past its due time is made: at once when it is only as late as a sleeping loop
 * makes it; otherwise at a random point of the next SPREAD_MS (never past a quarter of the time left, so a
 * certificate about to expire is renewed in time). `random` in [0, 1).
 */
export function lateRenewalDelayMs(lateByMs: number, msToExpiry: number, random: number): number {
  if (lateByMs <= LATE_AFTER_MS) return 0;
  const window = msToExpiry > 0 ? Math.min(SPREAD_MS, msToExpiry / 4) : SPREAD_MS;
  return Math.floor(Math.min(Math.max(random, 0), 1) * window);
}

export interface RotatedCertificate {
  notBefore: Date;
  notAfter: Date;
}

export interface RotationOptions<C extends RotatedCertificate> {
  /** "client certificate", "serving certificate": in logs. */
  what: string;
  clock: Clock;
  log: Logger;
  /** The certificate in use now. */
  current(): C;
  /** Gets a new certificate and puts it in use; throws if it could not. */
  renew(): Promise<void>;
  /** Called when the current certificate has expired and renewal has not succeeded: the caller decides what now. */
  onExpired(): Promise<void>;
  /** Longest sleep between looks at the clock; default 60 s. */
  pollMs?: number;
  random?: () => number;
}

/** Keeps one certificate renewed. */
export class CertificateRotation<C extends RotatedCertificate> {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private running: Promise<void> | undefined;
  private failures = 0;
  private retryAt: number | undefined;
  /** Clock time a late renewal was spread to (see lateRenewalDelayMs); undefined when none is pending. */
  private spreadAt: number | undefined;
  private target: { cert: C; at: Date } | undefined;
  /** Renewals done since start. */
  renewals = 0;
  lastError: string | undefined;

  constructor(private readonly o: RotationOptions<C>) {}

  /** When the current certificate will be renewed. */
  renewAt(): Date {
    const cert = this.o.current();
    if (!this.target || this.target.cert !== cert) this.target = { cert, at: renewalTime(cert.notBefore, cert.notAfter, (this.o.random ?? Math.random)()) };
    return this.target.at;
  }

  start(): void {
    this.schedule();
  }

  /** When a late renewal was put off to, to spread a fleet's renewals after a clock jump; undefined when none is. */
  get spreadUntil(): Date | undefined {
    return this.spreadAt === undefined ? undefined : new Date(this.spreadAt);
  }

  private due(now: number): number {
    // A clock set back leaves a retry time far ahead: wait no longer than a retry ever waits.
    if (this.retryAt !== undefined && this.retryAt - now > MAX_RETRY_DELAY_MS) this.retryAt = now + retryDelayMs(this.failures, 0);
    // Set back after a renewal was spread: look again at how late it is by the clock as it reads now.
    if (this.spreadAt !== undefined && this.spreadAt - now > SPREAD_MS) this.spreadAt = undefined;
    return Math.max(this.renewAt().getTime(), this.retryAt ?? 0, this.spreadAt ?? 0);
  }

  private schedule(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    const now = this.o.clock.now().getTime();
    const delay = Math.min(Math.max(0, this.due(now) - now), this.o.pollMs ?? 60_000, 2 ** 31 - 1);
    this.timer = setTimeout(() => this.tick(), delay);
    this.timer.unref?.();
  }

  private tick(): void {
    if (this.stopped) return;
    const now = this.o.clock.now().getTime();
    const due = this.due(now);
    if (now < due) return this.schedule();
    if (this.spreadAt === undefined && this.retryAt === undefined) {
      const cert = this.o.current();
      const wait = lateRenewalDelayMs(now - due, cert.notAfter.getTime() - now, (this.o.random ?? Math.random)());
      if (wait > 0) {
        this.spreadAt = now + wait;
        this.o.log.info({ lateByMs: now - due, renewInMs: wait }, `the ${this.o.what} was due ${Math.round((now - due) / 60_000)} min ago (the clock jumped or the machine slept): renewing at a random point of the next ${SPREAD_MS / 60_000} min`);
        return this.schedule();
      }
    }
    this.spreadAt = undefined;
    this.running = this.attempt().finally(() => {
      this.running = undefined;
      this.schedule();
    });
  }

  private async attempt(): Promise<void> {
    const cert = this.o.current();
    const now = this.o.clock.now();
    if (now.getTime() >= cert.notAfter.getTime()) {
      this.o.log.warn({ notAfter: cert.notAfter.toISOString() }, `the ${this.o.what} has expired before it could be renewed`);
      try {
        await this.o.onExpired();
        this.failures = 0;
        this.retryAt = undefined;
      } catch (e) {
        this.lastError = (e as Error).message;
        this.failures++;
        this.retryAt = now.getTime() + retryDelayMs(this.failures, 0);
      }
      return;
    }
    try {
      this.o.log.info({ notAfter: cert.notAfter.toISOString(), renewAt: this.renewAt().toISOString() }, `renewing the ${this.o.what}`);
      await this.o.renew();
      this.renewals++;
      this.failures = 0;
      this.retryAt = undefined;
      this.lastError = undefined;
    } catch (e) {
      this.failures++;
      this.lastError = (e as Error).message;
      // Jittered (half to all of the backoff): nodes that failed together, as when the CA was down, do not retry in step.
      const wait = Math.max(1000, Math.round(retryDelayMs(this.failures, cert.notAfter.getTime() - now.getTime()) * (0.5 + 0.5 * (this.o.random ?? Math.random)())));
      this.retryAt = this.o.clock.now().getTime() + wait;
      this.o.log.warn({ err: this.lastError, retryInMs: wait }, `renewing the ${this.o.what} failed; will retry`);
    }
  }

  /** Stops the loop; a renewal in progress finishes first. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }
}
