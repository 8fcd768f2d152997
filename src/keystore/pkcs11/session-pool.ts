// A small pool of logged-in PKCS#11 sessions: one operation per session at a time, at most `max` sessions open.
import pkcs11js from 'pkcs11js';
import { TrustplaneError } from '../../util/errors.js';
import { ckr, tokenError } from './token-error.js';
import type { Pkcs11 } from './module.js';

type Session = Buffer;

// After these a session may hold a half-done operation or be gone: close it rather than hand it to the next caller.
const LEAVES_SESSION_UNUSABLE = new Set([
  'CKR_OPERATION_ACTIVE',
  'CKR_BUFFER_TOO_SMALL',
  'CKR_SESSION_HANDLE_INVALID',
  'CKR_SESSION_CLOSED',
  'CKR_DEVICE_ERROR',
  'CKR_DEVICE_REMOVED',
  'CKR_TOKEN_NOT_PRESENT',
  'CKR_USER_NOT_LOGGED_IN',
]);

export class SessionPool {
  readonly #lib: Pkcs11;
  readonly #slot: Buffer;
  readonly #pin: string;
  readonly #max: number;
  readonly #idle: Session[] = [];
  readonly #waiting: Array<{ resolve: (s: Session) => void; reject: (e: unknown) => void }> = [];
  #open = 0;
  #closed = false;

  constructor(lib: Pkcs11, slot: Buffer, pin: string, max: number) {
    this.#lib = lib;
    this.#slot = slot;
    this.#pin = pin;
    this.#max = max;
  }

  /** Opens and logs in the first session, so a wrong PIN fails at open time. */
  start(): void {
    this.#idle.push(this.#newSession());
  }

  /** Runs `fn` with a session of its own. A session whose operation may be left half done is closed rather than reused. */
  async use<T>(fn: (session: Session) => T | Promise<T>): Promise<T> {
    const session = await this.#acquire();
    let healthy = true;
    try {
      return await fn(session);
    } catch (e) {
      healthy = e instanceof TrustplaneError || (ckr(e) !== undefined && !LEAVES_SESSION_UNUSABLE.has(ckr(e)!));
      throw e;
    } finally {
      this.#release(session, healthy);
    }
  }

  /** Closes idle sessions now and busy ones as they come back; callers still waiting for a session are refused. */
  close(): void {
    this.#closed = true;
    for (const s of this.#idle.splice(0)) this.#closeSession(s);
    for (const w of this.#waiting.splice(0)) w.reject(new TrustplaneError('Internal', 'the PKCS#11 key store was closed while this request waited for a session'));
  }

  get size(): number {
    return this.#open;
  }

  #acquire(): Promise<Session> {
    const idle = this.#idle.pop();
    if (idle) return Promise.resolve(idle);
    if (this.#open < this.#max) {
      try {
        return Promise.resolve(this.#newSession());
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  #release(session: Session, healthy: boolean): void {
    if (this.#closed || !healthy) {
      this.#closeSession(session);
      if (!this.#closed && this.#waiting.length > 0) {
        // Hand a replacement to a waiter so nobody waits for a session that will never come back.
        const next = this.#waiting.shift()!;
        try {
          next.resolve(this.#newSession());
        } catch (e) {
          next.reject(e);
        }
      }
      return;
    }
    const next = this.#waiting.shift();
    if (next) next.resolve(session);
    else this.#idle.push(session);
  }

  #newSession(): Session {
    let s: Session;
    try {
      s = this.#lib.C_OpenSession(this.#slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    } catch (e) {
      throw tokenError('C_OpenSession', e);
    }
    try {
      this.#lib.C_Login(s, pkcs11js.CKU_USER, this.#pin);
    } catch (e) {
      // Login state is per token and process: every session after the first finds the user logged in already.
      if (ckr(e) !== 'CKR_USER_ALREADY_LOGGED_IN') {
        try {
          this.#lib.C_CloseSession(s);
        } catch {
          /* the login error is the one to report */
        }
        throw tokenError('C_Login', e);
      }
    }
    this.#open++;
    return s;
  }

  #closeSession(s: Session): void {
    this.#open--;
    try {
      this.#lib.C_CloseSession(s);
    } catch {
      /* already closed or the token went away: nothing left to release */
    }
  }
}
