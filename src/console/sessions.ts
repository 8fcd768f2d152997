// Browser sessions of the web console: made by a token login, held only in the host's memory, bounded in number and age.
import { randomBytes } from 'node:crypto';
import type { Clock } from '../util/clock.js';

/** `__Host-`: the browser keeps it only if Secure, for this host alone (no Domain) and for every path. */
export const SESSION_COOKIE = '__Host-trustplane-console';
/** A console left open overnight logs in again the next day; a stolen cookie is not good for longer. */
export const SESSION_TTL_S = 12 * 3600;
/** Enough for every browser of a team; a flood of logins evicts the oldest sessions rather than growing the host. */
export const MAX_SESSIONS = 64;

export class ConsoleSessions {
  private readonly expiry = new Map<string, number>();

  constructor(private readonly clock: Clock) {}

  /** A new session id (256 random bits), valid for SESSION_TTL_S. */
  create(): string {
    const now = this.clock.now().getTime();
    for (const [id, until] of this.expiry) if (until <= now) this.expiry.delete(id);
    // Map iteration is insertion order: the first key is the oldest session.
    while (this.expiry.size >= MAX_SESSIONS) this.expiry.delete(this.expiry.keys().next().value!);
    const id = randomBytes(32).toString('base64url');
    this.expiry.set(id, now + SESSION_TTL_S * 1000);
    return id;
  }

  valid(id: string | undefined): boolean {
    if (!id) return false;
    const until = this.expiry.get(id);
    if (until === undefined) return false;
    if (until <= this.clock.now().getTime()) {
      this.expiry.delete(id);
      return false;
    }
    return true;
  }

  drop(id: string | undefined): void {
    if (id) this.expiry.delete(id);
  }

  /** The cookie that sets `id`: the script of the page never reads it (HttpOnly), and no other site's request carries it (SameSite=Strict). */
  static cookie(id: string): string {
    return `${SESSION_COOKIE}=${id}; Path=/; Max-Age=${SESSION_TTL_S}; HttpOnly; Secure; SameSite=Strict`;
  }

  static clearCookie(): string {
    return `${SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict`;
  }

  /** The session id the request's Cookie header carries, if any. */
  static fromRequest(cookieHeader: string | undefined): string | undefined {
    for (const part of (cookieHeader ?? '').split(';')) {
      const eq = part.indexOf('=');
      if (eq > 0 && part.slice(0, eq).trim() === SESSION_COOKIE) return part.slice(eq + 1).trim();
    }
    return undefined;
  }
}
