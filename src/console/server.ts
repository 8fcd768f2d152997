// The web console's HTTPS listener on loopback: pages, their script, JSON data and Server-Sent Events, for fleet administrators only.
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Fleet } from '../fleet/fleet.js';
import { ListenerGuard } from '../tls/listener-guard.js';
import { serverOptions, type MinVersion } from '../tls/policy.js';
import type { Clock } from '../util/clock.js';
import { TrustplaneError } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { adminAccess, sameSecret } from '../fleet/admin-access.js';
import { clusterPage, CONSOLE_CSS, loginPage, messagePage, overviewPage } from './page.js';
import { ConsoleSessions } from './sessions.js';
import { clusterSnapshot, overview } from './snapshot.js';

export interface ConsoleOptions {
  fleet: Fleet;
  host: string;
  /** 0: a free one. */
  port: number;
  /** The serving certificate and key (from the CA service's own CA, as the fleet API's and the metrics listener's). */
  cert: string;
  key: string;
  /** The CA service's own CA: a fleet administrator's client certificate from it is let in without a login. */
  clientCa: string;
  /** The host's bearer token (<data-dir>/host/metrics-token): in an Authorization header, or posted once to the login form. */
  token: string;
  clock: Clock;
  log: Logger;
  minVersion?: MinVersion;
  /** How often an event stream looks for a change; default 1 s (a rotation's phase shows within about a second). */
  eventIntervalMs?: number;
}

export interface RunningConsole {
  url: string;
  close(): Promise<void>;
}

/** Open event streams at most: each costs a fleet read per interval (shared between streams of the same page). */
const MAX_STREAMS = 32;
const MAX_LOGIN_BODY = 4096;
/** A comment line this often keeps proxies and the browser from thinking a quiet stream is dead. */
const KEEPALIVE_MS = 15_000;

const SECURITY_HEADERS = {
  // Scripts and styles only from this origin, nothing framed, forms post only here: an injected string cannot run.
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'X-Content-Type-Options': 'nosniff',
  // same-origin, not no-referrer: with no-referrer the browser sends `Origin: null` on the login form's post.
  'Referrer-Policy': 'same-origin',
  'Cache-Control': 'no-store',
};

/** The compiled console script, beside this file in dist/ (tsc builds it from src/console/static/console.ts). */
function consoleScript(): string {
  const url = new URL('./static/console.js', import.meta.url);
  try {
    return readFileSync(url, 'utf8');
  } catch (e) {
    throw new TrustplaneError('Internal', `the web console's script ${url.pathname} is missing (${(e as Error).message})`, 'build the project with `npx tsc -p tsconfig.json`');
  }
}

export async function startConsole(o: ConsoleOptions): Promise<RunningConsole> {
  const script = consoleScript();
  const sessions = new ConsoleSessions(o.clock);
  const streams = new Set<ServerResponse>();
  const intervalMs = o.eventIntervalMs ?? 1000;
  // One fleet read per page and interval, however many browsers watch it.
  const cache = new Map<string, { at: number; value: Promise<string> }>();
  const snapshotJson = (cluster: string | undefined): Promise<string> => {
    const key = cluster ?? '';
    const hit = cache.get(key);
    const now = Date.now();
    if (hit && now - hit.at < intervalMs * 0.9) return hit.value;
    const value = (cluster === undefined ? overview(o.fleet, o.clock.now()) : clusterSnapshot(o.fleet, cluster, o.clock.now())).then((v) => JSON.stringify(v));
    cache.set(key, { at: now, value });
    // Pages nobody watches any more are not kept.
    if (cache.size > MAX_STREAMS * 2) for (const [k, v] of cache) if (now - v.at > intervalMs * 10) cache.delete(k);
    return value;
  };

  const send = (res: ServerResponse, status: number, type: string, body: string, extra: Record<string, string> = {}) => {
    res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': type, ...extra });
    res.end(body);
  };
  const sendError = (res: ServerResponse, e: unknown, json: boolean) => {
    const err = e instanceof TrustplaneError ? e : new TrustplaneError('Internal', (e as Error).message);
    const message = err.hint ? `${err.message}; ${err.hint}` : err.message;
    if (json) send(res, err.httpStatus, 'application/json', JSON.stringify({ reason: err.reason, message }));
    else send(res, err.httpStatus, 'text/html; charset=utf-8', messagePage(err.reason === 'NotFound' ? 'Not found' : 'Something went wrong', message));
  };

  const authenticated = (req: IncomingMessage): { ok: true } | { ok: false; status: 401 | 403; message: string } => {
    if (sessions.valid(ConsoleSessions.fromRequest(req.headers.cookie))) return { ok: true };
    const a = adminAccess(req, o.token);
    if (a.ok) return { ok: true };
    if (a.why === 'not-admin') return { ok: false, status: 403, message: a.caller ? `the web console is for fleet administrators; ${a.caller} is not one` : a.detail };
    return {
      ok: false,
      status: 401,
      message:
        a.why === 'wrong-token'
          ? 'the bearer token is not the access token of this host (<data-dir>/host/metrics-token)'
          : "the web console needs a credential: log in with the token in <data-dir>/host/metrics-token, or send it as a bearer token, or use the fleet administrator's client certificate",
    };
  };

  const login = (req: IncomingMessage, res: ServerResponse) => {
    // A login posted from another site's page is refused: the console's own form sends its own origin.
    const origin = req.headers.origin;
    const site = req.headers['sec-fetch-site'];
    if ((origin && origin !== `https://${req.headers.host}`) || (site && site !== 'same-origin' && site !== 'none'))
      return send(res, 403, 'text/plain', `a login from ${origin ?? site} is not accepted; open the console at https://${req.headers.host}/ and log in there\n`);
    let body = '';
    let tooLarge = false;
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      body += c;
      if (body.length > MAX_LOGIN_BODY && !tooLarge) {
        tooLarge = true;
        send(res, 413, 'text/plain', 'the login form is larger than a token\n', { Connection: 'close' });
        req.destroy();
      }
    });
    req.on('end', () => {
      if (tooLarge) return;
      const form = new URLSearchParams(body);
      const next = safeNext(form.get('next'));
      const token = (form.get('token') ?? '').trim();
      if (!token || !sameSecret(token, o.token)) {
        o.log.warn({ from: req.socket.remoteAddress }, 'web console login refused: wrong token');
        return send(res, 401, 'text/html; charset=utf-8', loginPage(next, token ? 'That is not the access token of this host. Copy it again from <data-dir>/host/metrics-token.' : 'Enter the access token.'));
      }
      res.writeHead(303, { ...SECURITY_HEADERS, Location: next, 'Set-Cookie': ConsoleSessions.cookie(sessions.create()) });
      res.end();
    });
  };

  let closing = false;
  const events = (req: IncomingMessage, res: ServerResponse, cluster: string | undefined) => {
    // A browser reconnecting over a kept-alive connection while the host stops would hold the listener open.
    if (closing) return send(res, 503, 'text/plain', 'the control plane host is stopping\n', { Connection: 'close' });
    if (streams.size >= MAX_STREAMS) return send(res, 503, 'text/plain', `the console already serves ${MAX_STREAMS} live pages; close some tabs\n`, { 'Retry-After': '10' });
    res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': 'text/event-stream; charset=utf-8', Connection: 'keep-alive' });
    // A browser that lost the stream reconnects after 2 s, and is then given the current state at once.
    res.write('retry: 2000\n\n');
    streams.add(res);
    let last = '';
    let lastWrite = Date.now();
    let timer: NodeJS.Timeout | undefined;
    let open = true;
    const tick = async () => {
      try {
        const json = await snapshotJson(cluster);
        if (!open) return;
        if (json !== last) {
          res.write(`event: snapshot\ndata: ${json}\n\n`);
          last = json;
          lastWrite = Date.now();
        }
      } catch (e) {
        if (!open) return;
        const err = e instanceof TrustplaneError ? e : new TrustplaneError('Internal', (e as Error).message);
        const json = JSON.stringify({ reason: err.reason, message: err.message });
        if (json !== last) {
          res.write(`event: problem\ndata: ${json}\n\n`);
          last = json;
          lastWrite = Date.now();
        }
      }
      if (Date.now() - lastWrite >= KEEPALIVE_MS) {
        res.write(': keepalive\n\n');
        lastWrite = Date.now();
      }
      if (open) timer = setTimeout(() => void tick(), intervalMs);
    };
    const stop = () => {
      open = false;
      clearTimeout(timer);
      streams.delete(res);
    };
    res.on('close', stop);
    void tick();
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'https://console.invalid');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (method === 'POST' && path === '/login') return login(req, res);
    const auth = authenticated(req);
    const isData = path.startsWith('/api/');
    if (!auth.ok) {
      // Pages answer with the login form (still 401: the page itself is not shown); data and the script with the reason.
      const wantsPage = !isData && !path.startsWith('/static/') && method === 'GET';
      if (auth.status === 401 && wantsPage)
        return send(res, 401, 'text/html; charset=utf-8', loginPage(safeNext(path + url.search)), { 'WWW-Authenticate': 'Bearer realm="trustplane console"' });
      if (path === '/static/console.css') return send(res, 200, 'text/css; charset=utf-8', CONSOLE_CSS); // the login form's look; it holds nothing of the fleet
      return send(res, auth.status, isData ? 'application/json' : 'text/plain', isData ? JSON.stringify({ reason: auth.status === 401 ? 'Unauthorized' : 'Forbidden', message: auth.message }) : `${auth.message}\n`, auth.status === 401 ? { 'WWW-Authenticate': 'Bearer realm="trustplane console"' } : {});
    }
    if (method === 'POST' && path === '/logout') {
      sessions.drop(ConsoleSessions.fromRequest(req.headers.cookie));
      res.writeHead(303, { ...SECURITY_HEADERS, Location: '/', 'Set-Cookie': ConsoleSessions.clearCookie() });
      return res.end();
    }
    if (method !== 'GET' && method !== 'HEAD') return send(res, 405, 'text/plain', 'the console only reads: GET pages and data\n', { Allow: 'GET, HEAD' });
    if (path === '/static/console.js') return send(res, 200, 'text/javascript; charset=utf-8', script);
    if (path === '/static/console.css') return send(res, 200, 'text/css; charset=utf-8', CONSOLE_CSS);
    if (path === '/') return send(res, 200, 'text/html; charset=utf-8', overviewPage());
    if (path === '/api/clusters') return send(res, 200, 'application/json', await snapshotJson(undefined));
    if (path === '/api/events') {
      if (method === 'HEAD') return send(res, 200, 'text/event-stream; charset=utf-8', '');
      return events(req, res, url.searchParams.get('cluster') ?? undefined);
    }
    const m = /^\/(api\/)?clusters\/([^/]+)$/.exec(path);
    if (m) {
      const name = decodeURIComponent(m[2]);
      if (m[1]) return send(res, 200, 'application/json', await snapshotJson(name));
      await o.fleet.describe(name); // a NotFound page rather than a shell that never fills
      return send(res, 200, 'text/html; charset=utf-8', clusterPage(name));
    }
    throw new TrustplaneError('NotFound', `the console has no page ${path}`, 'start from the list of clusters at /');
  };

  // Idle and slow connections are closed and connections capped, as on every listener; an open event stream is a request in flight.
  const guard = new ListenerGuard({ name: 'web console', tls: true, requests: 'http' });
  // A client certificate is asked for, not required: a browser without one logs in with the token.
  const tls = serverOptions({ cert: o.cert, key: o.key, ca: o.clientCa, minVersion: o.minVersion, clientCert: 'request' });
  const server: Server = createServer({ ...tls, ...guard.serverOptions() }, (req, res) => {
    handle(req, res).catch((e) => {
      if (res.headersSent) res.destroy();
      else sendError(res, e, (req.url ?? '').startsWith('/api/'));
    });
  });
  guard.attach(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  const p = (server.address() as AddressInfo).port;
  return {
    url: `https://${o.host.includes(':') ? `[${o.host}]` : o.host}:${p}/`,
    close: () =>
      new Promise<void>((r) => {
        closing = true;
        for (const s of streams) s.end();
        server.close(() => r());
        server.closeIdleConnections();
        // The console only reads: what is still in flight a moment later is cut off rather than holding up the host's stop.
        setTimeout(() => server.closeAllConnections(), 1000).unref();
      }),
  };
}

/** Where a login goes on to: a path of this console only (never another site, never a protocol-relative `//host`). */
function safeNext(v: string | null): string {
  return v && v.startsWith('/') && !v.startsWith('//') && !v.includes('\\') ? v : '/';
}
