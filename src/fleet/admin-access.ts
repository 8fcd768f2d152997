// The one rule for the host's admin-only HTTPS listeners (/metrics, the web console): the fleet administrator's client certificate, or the host's bearer token.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { callerFromSubject } from '../ca/server.js';

/** Who was let in and how; or why not, so that each listener tells its user what to fix in its own words. */
export type AdminAccess =
  | { ok: true; via: 'certificate' | 'token'; name: string }
  /** A verified certificate from the CA service, but of a caller that is not a fleet administrator (or of no known role). */
  | { ok: false; status: 403; why: 'not-admin'; caller?: string; detail: string }
  /** A bearer token was sent and it is not this host's. */
  | { ok: false; status: 401; why: 'wrong-token' }
  /** Neither a verified certificate nor a bearer token. */
  | { ok: false; status: 401; why: 'none' };

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Whether two secrets are equal, compared as digests: equal lengths for timingSafeEqual, and no early exit that would time the secret out. */
export function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

/** The bearer token of an `Authorization: Bearer ...` header, if the request has one. */
export function bearerToken(req: IncomingMessage): string | undefined {
  const auth = req.headers.authorization;
  const m = auth ? /^Bearer\s+(\S+)\s*$/i.exec(auth) : null;
  return m ? m[1] : undefined;
}

/**
 * The listener asks for a client certificate against the CA service's own CA (clientCert: 'request'), so `authorized`
 * means one the CA service issued; a certificate from elsewhere counts as none, and the token may still let the caller in.
 */
export function adminAccess(req: IncomingMessage, token: string): AdminAccess {
  const socket = req.socket as TLSSocket;
  if (socket.authorized) {
    const subject = socket.getPeerCertificate().subject as unknown as Record<string, string | string[] | undefined>;
    try {
      const caller = callerFromSubject(subject);
      if (caller.role === 'fleet') return { ok: true, via: 'certificate', name: caller.name };
      return { ok: false, status: 403, why: 'not-admin', caller: caller.name, detail: `${caller.name} is not a fleet administrator` };
    } catch (e) {
      return { ok: false, status: 403, why: 'not-admin', detail: (e as Error).message };
    }
  }
  const sent = bearerToken(req);
  if (sent !== undefined && sameSecret(sent, token)) return { ok: true, via: 'token', name: 'token' };
  return sent !== undefined ? { ok: false, status: 401, why: 'wrong-token' } : { ok: false, status: 401, why: 'none' };
}
