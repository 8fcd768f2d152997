// The web console in a real browser (Debian's Chromium driven by playwright-core) against real processes: it refuses
// anyone without credentials, logs in with the host's token into an HttpOnly session cookie, shows the CA timelines as
// SVG bars, follows a rotation live without a reload, and works from the keyboard.
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer as createNetServer } from 'node:net';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import type { ConsoleCluster } from '../../src/console/snapshot.js';
import type { HostEndpoint } from '../../src/fleet/host.js';
import { caPaths, hostPaths } from '../../src/util/datadir.js';
import { waitFor } from '../../src/util/wait.js';
import { tp } from '../helpers/cli.js';
import { ClusterWithNodes } from '../helpers/cluster-nodes.js';
import { startHostChild } from '../helpers/control-plane.js';

const CHROMIUM = '/usr/bin/chromium';

interface Answer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** One HTTPS request to the console, trusting only the CA service's own CA (which issued the console's certificate). */
function get(url: string, o: { ca: string; headers?: Record<string, string>; cert?: string; key?: string; method?: string; body?: string }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: o.method ?? 'GET', ca: o.ca, cert: o.cert, key: o.key, headers: o.headers, agent: false, timeout: 20000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      // An event stream never ends: its first bytes are enough.
      res.on('data', (c: string) => {
        body += c;
        if (String(res.headers['content-type']).startsWith('text/event-stream') && body.includes('event: snapshot')) res.destroy();
      });
      const done = () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers });
      res.on('end', done);
      res.on('close', done);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within 20 s`)));
    req.on('error', reject);
    req.end(o.body);
  });
}

/** base64(sha256(SubjectPublicKeyInfo)): what Chromium's SPKI allow-list takes. */
const spkiPin = (certPem: string) => createHash('sha256').update(new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' })).digest('base64');

/** The certificates a TLS server presents, leaf first, as PEM. */
function presentedChain(url: string, ca: string): Promise<string[]> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect({ host: u.hostname, port: Number(u.port), ca, servername: 'localhost', timeout: 10000 }, () => {
      const out: string[] = [];
      let c = s.getPeerCertificate(true);
      for (;;) {
        out.push(new X509Certificate(c.raw).toString());
        if (!c.issuerCertificate || c.issuerCertificate === c || c.issuerCertificate.fingerprint256 === c.fingerprint256) break;
        c = c.issuerCertificate;
      }
      s.end();
      resolve(out);
    });
    s.on('error', reject);
  });
}

describe('web console in Chromium (real processes)', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (apt-get install chromium)` }, () => {
  const env = new ClusterWithNodes('tp-console-');
  const { tmp, dataDir } = env;
  // Screenshots stay in the test's temp dir; TP_CONSOLE_SCREENSHOTS names a directory to keep them for a look.
  const shots = process.env.TP_CONSOLE_SCREENSHOTS ?? join(tmp.path, 'screenshots');
  let ctx: BrowserContext | undefined;
  let ep: HostEndpoint;
  let serviceCa: string;
  let token: string;

  before(async () => {
    mkdirSync(shots, { recursive: true });
    const cp = await env.start();
    await cp.fleet().create({ name: 'web' });
    await cp.fleet().create({ name: 'other' });
    await env.join('web', 'web-a');
    ep = JSON.parse(readFileSync(hostPaths(dataDir).endpoint, 'utf8')) as HostEndpoint;
    serviceCa = readFileSync(caPaths(dataDir).serviceCa, 'utf8');
    token = readFileSync(hostPaths(dataDir).metricsToken, 'utf8').trim();
    // The node's client certificate is what the nodes table shows.
    await waitFor('node web-a to hold a client certificate', async () => {
      const r = await get(new URL('/api/clusters/web', ep.consoleUrl).href, { ca: serviceCa, headers: { authorization: `Bearer ${token}` } });
      return r.status === 200 && (JSON.parse(r.body) as ConsoleCluster).nodes.length === 1 ? true : undefined;
    }, 90000, 250);
  });

  after(async () => {
    await ctx?.close().catch(() => undefined);
    await env.cleanup();
  });

  test('the console URL is in the endpoint file, and its port is kept in the data dir', () => {
    assert.match(ep.consoleUrl ?? '', /^https:\/\/127\.0\.0\.1:\d+\/$/);
    assert.equal(readFileSync(hostPaths(dataDir).consolePort, 'utf8').trim(), new URL(ep.consoleUrl!).port);
    assert.match(env.cp.host.output(), new RegExp(`web console at ${ep.consoleUrl!.replace(/[.[\]]/g, '\\$&')}`));
  });

  test('every page, data endpoint and the script refuse a request without credentials (401); the token and the admin certificate are let in', async () => {
    const paths = ['/', '/clusters/web', '/api/clusters', '/api/clusters/web', '/api/events?cluster=web', '/static/console.js'];
    for (const p of paths) {
      const url = new URL(p, ep.consoleUrl).href;
      const none = await get(url, { ca: serviceCa });
      assert.equal(none.status, 401, `${p} without credentials: ${none.status} ${none.body.slice(0, 200)}`);
      assert.equal(none.headers['www-authenticate'], 'Bearer realm="trustplane console"');
      // Nothing of the fleet is in a refusal: no cluster, no node, no status.
      assert.doesNotMatch(none.body, /web-a|RUNNING|RECONCILING|generation/, p);
      const wrong = await get(url, { ca: serviceCa, headers: { authorization: `Bearer ${'x'.repeat(43)}` } });
      assert.equal(wrong.status, 401, `${p} with a wrong token`);
      const forged = await get(url, { ca: serviceCa, headers: { cookie: `__Host-trustplane-console=${'A'.repeat(43)}` } });
      assert.equal(forged.status, 401, `${p} with a made-up session cookie`);
      const byToken = await get(url, { ca: serviceCa, headers: { authorization: `Bearer ${token}` } });
      assert.equal(byToken.status, 200, `${p} with the token: ${byToken.body.slice(0, 200)}`);
    }
    const p = caPaths(dataDir);
    const byCert = await get(new URL('/api/clusters', ep.consoleUrl).href, { ca: serviceCa, cert: readFileSync(p.fleetCert, 'utf8'), key: readFileSync(p.fleetKey, 'utf8') });
    assert.equal(byCert.status, 200, byCert.body);
    assert.deepEqual((JSON.parse(byCert.body) as { clusters: Array<{ name: string }> }).clusters.map((c) => c.name), ['other', 'web']);
    // The login form refuses a wrong token with 401 and sets no cookie; the right one sets an HttpOnly, Secure, SameSite=Strict session.
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    const bad = await get(new URL('/login', ep.consoleUrl).href, { ca: serviceCa, method: 'POST', headers: form, body: 'token=nope&next=%2F' });
    assert.equal(bad.status, 401);
    assert.equal(bad.headers['set-cookie'], undefined);
    const good = await get(new URL('/login', ep.consoleUrl).href, { ca: serviceCa, method: 'POST', headers: form, body: `token=${encodeURIComponent(token)}&next=%2F%2Fevil.example` });
    assert.equal(good.status, 303);
    assert.equal(good.headers.location, '/', 'a login goes on only to a path of the console');
    const cookie = String(good.headers['set-cookie']);
    assert.match(cookie, /^__Host-trustplane-console=[\w-]{43}; Path=\/; Max-Age=\d+; HttpOnly; Secure; SameSite=Strict$/);
    const bySession = await get(new URL('/api/clusters/web', ep.consoleUrl).href, { ca: serviceCa, headers: { cookie: cookie.split(';')[0] } });
    assert.equal(bySession.status, 200);
    // Pages run only the console's own script and style, and are never cached.
    const page = await get(ep.consoleUrl!, { ca: serviceCa, headers: { cookie: cookie.split(';')[0] } });
    assert.equal(page.status, 200);
    assert.match(String(page.headers['content-security-policy']), /default-src 'none'; script-src 'self'; style-src 'self'/);
    assert.equal(page.headers['cache-control'], 'no-store');
    // Logging out ends the session on the host, not only in the browser.
    const out = await get(new URL('/logout', ep.consoleUrl).href, { ca: serviceCa, method: 'POST', headers: { cookie: cookie.split(';')[0] } });
    assert.equal(out.status, 303);
    assert.match(String(out.headers['set-cookie']), /^__Host-trustplane-console=; Path=\/; Max-Age=0/);
    assert.equal((await get(new URL('/api/clusters/web', ep.consoleUrl).href, { ca: serviceCa, headers: { cookie: cookie.split(';')[0] } })).status, 401);
    // A login posted from another site's page is refused.
    const crossSite = await get(new URL('/login', ep.consoleUrl).href, { ca: serviceCa, method: 'POST', headers: { ...form, origin: 'https://evil.example' }, body: `token=${encodeURIComponent(token)}` });
    assert.equal(crossSite.status, 403);
  });

  test('in Chromium: token login, the clusters, keyboard to a cluster, its timeline, and a rotation followed live', async () => {
    // No blanket ignoreHTTPSErrors: Chromium accepts only a chain holding the CA service's own CA key (a fresh profile has no
    // way to import a CA without NSS tools). The console presents its certificate with that CA, and that CA signed it
    // (checked here by Node); pinning the CA rather than the leaf keeps the trust across a host restart, which makes a new leaf.
    const chain = await presentedChain(ep.consoleUrl!, serviceCa);
    assert.equal(chain.length, 2);
    assert.equal(new X509Certificate(chain[1]).fingerprint256, new X509Certificate(serviceCa).fingerprint256);
    assert.equal(new X509Certificate(chain[0]).verify(new X509Certificate(serviceCa).publicKey), true);
    const pin = spkiPin(serviceCa);
    ctx = await chromium.launchPersistentContext(join(tmp.path, 'chromium-profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--ignore-certificate-errors-spki-list=${pin}`],
      viewport: { width: 1280, height: 900 },
      timeout: 60000,
    });
    const page: Page = ctx.pages()[0] ?? (await ctx.newPage());
    page.setDefaultTimeout(30000);
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));

    // Without a session the page is the login form, with status 401.
    const first = await page.goto(ep.consoleUrl!);
    assert.equal(first?.status(), 401);
    await page.screenshot({ path: join(shots, '0-login.png') });
    await page.getByLabel('Access token').fill(token);
    await page.keyboard.press('Enter');
    await page.getByRole('table', { name: /Clusters of this fleet \(2\)/ }).waitFor();
    const cookies = await ctx.cookies(ep.consoleUrl!);
    const session = cookies.find((c) => c.name === '__Host-trustplane-console');
    assert.ok(session, 'the login set the session cookie');
    assert.equal(session.httpOnly, true);
    assert.equal(session.secure, true);
    assert.equal(session.sameSite, 'Strict');
    assert.equal(await page.evaluate(() => document.cookie), '', "the page's script cannot read the session");
    await page.screenshot({ path: join(shots, '1-clusters.png'), fullPage: true });

    // Keyboard only: Tab until the link to cluster web has the focus (bounded), the focus ring shows, Enter opens it.
    let focused = '';
    for (let i = 0; i < 15 && focused !== 'web'; i++) {
      await page.keyboard.press('Tab');
      focused = await page.evaluate(() => (document.activeElement?.getAttribute('data-focus-key') ?? '').replace(/^cluster:/, ''));
    }
    assert.equal(focused, 'web', 'Tab reaches the link to cluster web');
    const ring = await page.evaluate(() => {
      const el = document.activeElement as HTMLElement;
      const st = getComputedStyle(el);
      return { visible: el.matches(':focus-visible'), outline: st.outlineStyle, width: st.outlineWidth };
    });
    assert.equal(ring.visible, true);
    assert.notEqual(ring.outline, 'none');
    assert.notEqual(ring.width, '0px');
    await page.screenshot({ path: join(shots, '2-focus.png') });
    await page.keyboard.press('Enter');
    await page.waitForURL(/\/clusters\/web$/);

    // The timeline: one bar per generation of each authority, today and the 30- and 7-day thresholds of the cluster root CA.
    const rootBars = page.locator('svg.timeline[data-authority="root"]:not(.close-up) rect.bar');
    await rootBars.first().waitFor();
    assert.equal(await rootBars.count(), 1);
    assert.equal(await rootBars.first().getAttribute('data-state'), 'active');
    for (const kind of ['etcd-api', 'etcd-peer']) assert.equal(await page.locator(`svg.timeline[data-authority="${kind}"]:not(.close-up) rect.bar`).count(), 1, kind);
    const rootTimeline = page.locator('svg.timeline[data-authority="root"]:not(.close-up)');
    assert.equal(await rootTimeline.locator('line.today').count(), 1);
    assert.equal(await rootTimeline.locator('line.threshold-rotation[data-days="30"]').count(), 1);
    assert.equal(await rootTimeline.locator('line.threshold-degraded[data-days="7"]').count(), 1);
    assert.match((await rootTimeline.getAttribute('aria-labelledby')) ?? '', /tl-root-title tl-root-desc/);
    // The close-up of the weeks before expiry draws both thresholds apart; today (ten years earlier) is outside it.
    const closeUp = page.locator('svg.timeline.close-up[data-authority="root"]');
    assert.equal(await closeUp.locator('line.threshold').count(), 2);
    assert.equal(await closeUp.locator('line.today').count(), 0);
    await page.getByRole('table', { name: /Nodes of cluster web and their client certificates \(1\)/ }).getByText('web-a').waitFor();
    const live = page.locator('#rotation-live');
    assert.equal(await live.getAttribute('role'), 'status');
    assert.equal(await live.getAttribute('aria-live'), 'polite');
    await waitFor('the live region to say no rotation ran', async () => ((await live.textContent()) ?? '').includes('No credential rotation') || undefined, 20000, 100);
    await page.screenshot({ path: join(shots, '3-cluster.png'), fullPage: true });

    // A rotation started through the fleet API shows up without a reload: a mark left in the page survives.
    await page.evaluate(() => ((window as unknown as { consoleMark: number }).consoleMark = 42));
    const f = env.cp.fleet();
    await f.update('web', { startCredentialRotation: true });
    await waitFor('the page to show phase moving', async () => /phase moving/.test((await live.textContent()) ?? '') || undefined, 30000, 100);
    assert.equal(await page.locator('ol.phases li[aria-current="step"]').getAttribute('data-phase'), 'moving');
    await waitFor('a second bar for the new generation', async () => ((await rootBars.count()) === 2 ? true : undefined), 20000, 100);
    assert.deepEqual(await rootBars.evaluateAll((bars) => bars.map((b) => `${b.getAttribute('data-generation')}:${b.getAttribute('data-state')}`)), ['1:previous', '2:active']);
    await page.screenshot({ path: join(shots, '4-rotation-moving.png'), fullPage: true });
    // The node moves to generation 2 by itself; the live region counts it.
    await waitFor('the page to count web-a on generation 2', async () => /1 of 1 node\(s\) on generation 2/.test((await live.textContent()) ?? '') || undefined, 90000, 250);
    await f.update('web', { completeCredentialRotation: true, force: true });
    await waitFor('the page to show the rotation done', async () => /is done/.test((await live.textContent()) ?? '') || undefined, 30000, 100);
    assert.equal(await page.evaluate(() => (window as unknown as { consoleMark?: number }).consoleMark), 42, 'the page was not reloaded');
    await page.screenshot({ path: join(shots, '5-rotation-done.png'), fullPage: true });
    assert.deepEqual(errors, [], 'no script errors on the page');
  });

  test('a restarted host serves the console on the same port; an open page says its session is gone instead of showing stale data', async () => {
    const port = new URL(ep.consoleUrl!).port;
    await env.cp.restartHost('SIGTERM');
    const again = JSON.parse(readFileSync(hostPaths(dataDir).endpoint, 'utf8')) as HostEndpoint;
    assert.equal(new URL(again.consoleUrl!).port, port);
    // Sessions live in the host's memory only: the page's event stream reconnects, is refused, and the page says what to do.
    const page = ctx!.pages()[0];
    await waitFor('the open page to tell that its session is gone', async () => ((await page.locator('#updated').textContent()) ?? '').includes('reload the page to log in again') || undefined, 30000, 100);
    const none = await get(again.consoleUrl!, { ca: serviceCa });
    assert.equal(none.status, 401);
  });

  test('when another process holds the kept port, the host takes a free one and keeps that instead', async () => {
    await ctx?.close();
    ctx = undefined;
    const kept = Number(readFileSync(hostPaths(dataDir).consolePort, 'utf8').trim());
    await env.cp.host.stop('SIGTERM');
    const blocker = createNetServer();
    await new Promise<void>((resolve, reject) => {
      blocker.once('error', reject);
      blocker.listen(kept, '127.0.0.1', () => resolve());
    });
    try {
      env.cp.host = await startHostChild(dataDir);
      const now = JSON.parse(readFileSync(hostPaths(dataDir).endpoint, 'utf8')) as HostEndpoint;
      const port = Number(new URL(now.consoleUrl!).port);
      assert.notEqual(port, kept);
      assert.equal(readFileSync(hostPaths(dataDir).consolePort, 'utf8').trim(), String(port));
      assert.equal((await get(now.consoleUrl!, { ca: serviceCa })).status, 401);
    } finally {
      await new Promise<void>((r) => blocker.close(() => r()));
    }
  });

  test('serve refuses a --console-port that is not a port, saying so', () => {
    const r = tp(['serve', '--data-dir', join(tmp.path, 'unused'), '--console-port', '70000']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /--console-port "70000" is not a port number/);
  });
});
