// The host's /metrics answers only an authenticated scraper, as kube-apiserver's does: the fleet administrator's client
// certificate or the bearer token in <data-dir>/host/metrics-token, over HTTPS. Real processes, and a real Prometheus
// scraping with the README's scrape config.
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { CaClient } from '../../src/ca/client.js';
import type { HostEndpoint } from '../../src/fleet/host.js';
import { buildCsr, generateKeyPair, pemEncode } from '../../src/pki/index.js';
import { caPaths, hostPaths } from '../../src/util/datadir.js';
import { waitFor } from '../../src/util/wait.js';
import { startControlPlane, type ControlPlane } from '../helpers/control-plane.js';
import { scrapeMetrics } from '../helpers/metrics.js';
import { startPrometheus, type PrometheusServer } from '../helpers/monitoring.js';
import { openssl, opensslKey } from '../helpers/openssl.js';
import { tempDir } from '../helpers/tmp.js';

describe('metrics need the admin credential or the metrics token (real processes)', () => {
  const tmp = tempDir('tp-metrics-auth-');
  const dataDir = join(tmp.path, 'data');
  let cp: ControlPlane | undefined;
  let prometheus: PrometheusServer | undefined;
  after(async () => {
    await prometheus?.stop();
    await cp?.stop();
    tmp.remove();
  });
  const endpoint = () => JSON.parse(readFileSync(hostPaths(dataDir).endpoint, 'utf8')) as HostEndpoint;

  test('no credential, a wrong token, a cluster caller and a foreign certificate are refused; the token and the admin certificate scrape', async () => {
    cp = await startControlPlane(dataDir);
    await cp.fleet().create({ name: 'm1' });
    const ep = endpoint();
    assert.match(ep.metricsUrl!, /^https:\/\/127\.0\.0\.1:\d+\/metrics$/);
    assert.equal(ep.metricsTokenFile, hostPaths(dataDir).metricsToken);
    assert.equal(statSync(ep.metricsTokenFile!).mode & 0o777, 0o600);

    const none = await scrapeMetrics(dataDir, 'none');
    assert.equal(none.status, 401);
    assert.equal(none.headers['www-authenticate'], 'Bearer realm="trustplane metrics"');
    assert.match(none.body, /client certificate, or the bearer token in <data-dir>\/host\/metrics-token/);
    assert.doesNotMatch(none.body, /trustplane_/);
    const wrong = await scrapeMetrics(dataDir, { token: 'x'.repeat(43) });
    assert.equal(wrong.status, 401);
    assert.match(wrong.body, /not the metrics token/);

    // A caller the CA service issued for one cluster is authenticated but not a fleet administrator.
    const p = caPaths(dataDir);
    const fleetCa = new CaClient({ url: (JSON.parse(readFileSync(p.endpoint, 'utf8')) as { url: string }).url, cert: readFileSync(p.fleetCert, 'utf8'), key: readFileSync(p.fleetKey, 'utf8'), ca: readFileSync(p.serviceCa, 'utf8') });
    try {
      const kp = await generateKeyPair({ kind: 'ec', curve: 'P-256' });
      const issued = await fleetCa.issueClusterCaller('m1', pemEncode('CERTIFICATE REQUEST', await buildCsr({ subject: [{ type: 'CN', value: 'x' }], signer: kp.signer })));
      const clusterCaller = await scrapeMetrics(dataDir, { cert: issued.certificate, key: kp.privateKeyPem });
      assert.equal(clusterCaller.status, 403, clusterCaller.body);
      assert.match(clusterCaller.body, /metrics are for fleet administrators; cluster:m1 is not one/);
    } finally {
      fleetCa.close();
    }
    // A certificate from elsewhere proves nothing: without the token it is as if none were sent.
    const key = opensslKey(tmp.path, 'foreign', 'p256');
    const cert = openssl(['req', '-x509', '-new', '-key', key, '-subj', '/O=trustplane:fleet/CN=fleet:admin', '-days', '1']).stdout;
    const foreign = await scrapeMetrics(dataDir, { cert, key: readFileSync(key, 'utf8') });
    assert.equal(foreign.status, 401, foreign.body);

    for (const cred of ['token', 'admin-cert'] as const) {
      const ok = await scrapeMetrics(dataDir, cred);
      assert.equal(ok.status, 200, `${cred}: ${ok.body}`);
      assert.match(ok.body, /trustplane_cluster_status\{cluster="m1",status="RUNNING"\} 1/);
    }
    // Plain HTTP gets no answer at all.
    await assert.rejects(fetch(ep.metricsUrl!.replace('https:', 'http:')));
  });

  test('the token survives a host restart, so a scrape config keeps working; Prometheus scrapes with the README config', async () => {
    const token = readFileSync(hostPaths(dataDir).metricsToken, 'utf8');
    await cp!.restartHost('SIGKILL');
    assert.equal(readFileSync(hostPaths(dataDir).metricsToken, 'utf8'), token);
    assert.equal((await scrapeMetrics(dataDir, 'token')).status, 200);

    // The scrape config of the README, with this data dir's files.
    const target = new URL(endpoint().metricsUrl!).host;
    const p = caPaths(dataDir);
    const config = join(tmp.path, 'prometheus.yml');
    writeFileSync(
      config,
      [
        'global: { scrape_interval: 1s, scrape_timeout: 1s }',
        'scrape_configs:',
        '  - job_name: trustplane-token',
        '    scheme: https',
        '    authorization:',
        `      credentials_file: ${hostPaths(dataDir).metricsToken}`,
        '    tls_config:',
        `      ca_file: ${p.serviceCa}`,
        `    static_configs: [{ targets: ['${target}'] }]`,
        '  - job_name: trustplane-cert',
        '    scheme: https',
        '    tls_config:',
        `      ca_file: ${p.serviceCa}`,
        `      cert_file: ${p.fleetCert}`,
        `      key_file: ${p.fleetKey}`,
        `    static_configs: [{ targets: ['${target}'] }]`,
        '',
      ].join('\n'),
    );
    prometheus = await startPrometheus(config, tmp.path);
    const web = new URL(prometheus.url).port;
    const health = await waitFor('Prometheus to scrape both jobs', async () => {
      if (prometheus!.child.exitCode !== null) throw new Error(`prometheus exited: ${prometheus!.output().slice(-2000)}`);
      const r = await fetch(`http://127.0.0.1:${web}/api/v1/targets`).catch(() => undefined);
      if (!r?.ok) return undefined;
      const targets = ((await r.json()) as { data: { activeTargets: Array<{ labels: { job: string }; health: string; lastError: string }> } }).data.activeTargets;
      const byJob = Object.fromEntries(targets.map((t) => [t.labels.job, `${t.health}${t.lastError ? ` ${t.lastError}` : ''}`]));
      return byJob['trustplane-token'] === 'up' && byJob['trustplane-cert'] === 'up' ? byJob : undefined;
    }, 60000, 250);
    assert.deepEqual(health, { 'trustplane-token': 'up', 'trustplane-cert': 'up' });
    const jobs = await waitFor('the scraped series in Prometheus', async () => {
      const q = await fetch(`http://127.0.0.1:${web}/api/v1/query?query=${encodeURIComponent('trustplane_cluster_status{cluster="m1",status="RUNNING"} == 1')}`);
      const result = ((await q.json()) as { data: { result: Array<{ metric: { job: string } }> } }).data.result;
      return result.length === 2 ? result.map((r) => r.metric.job).sort() : undefined;
    }, 30000, 250);
    assert.deepEqual(jobs, ['trustplane-cert', 'trustplane-token']);
  });
});
