// The shipped alert rules and dashboard against a real host (real CA and host processes) and Debian's Prometheus: the
// expiry alert fires for a cluster whose root CA was made with a 20-day lifetime, not for a 10-year one nor for a
// 20-day one whose rotation is running; every metric the dashboard and the rules name is exported by the host, and every
// panel's query is one Prometheus answers.
//
// The host's lifetime controller looks only once a day here, so that nothing starts the rotations it would start at 30
// days: the situation the alert is for. The shipped file's 15 minutes of `for` would outlast the test, so Prometheus
// also loads a copy with every `for` set to 0s (expressions unchanged): that copy's alert fires, the shipped one's is
// pending for the same series.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { HostEndpoint } from '../../src/fleet/host.js';
import { caPaths, hostPaths } from '../../src/util/datadir.js';
import { waitFor } from '../../src/util/wait.js';
import { startControlPlane, type ControlPlane } from '../helpers/control-plane.js';
import { scrapeMetrics } from '../helpers/metrics.js';
import { ALERTS_FILE, alertRules, dashboardExprs, exposedMetrics, metricNamesOf, startPrometheus, type PrometheusServer } from '../helpers/monitoring.js';
import { tempDir } from '../helpers/tmp.js';

const DAY = 86400;
const EXPIRY = 'TrustplaneCAExpiringWithoutRotation';

interface Alert {
  labels: Record<string, string>;
  state: 'pending' | 'firing';
}

describe('shipped alert rules and dashboard with a real host and Prometheus', () => {
  const tmp = tempDir('tp-e2e-monitoring-');
  const dataDir = join(tmp.path, 'data');
  let cp: ControlPlane | undefined;
  let prom: PrometheusServer | undefined;
  after(async () => {
    await prom?.stop();
    await cp?.stop();
    tmp.remove();
  });

  test('the expiry alert fires for the 20-day root CA only', async () => {
    cp = await startControlPlane(dataDir, { hostArgs: ['--lifetime-check-interval', '24h'] });
    const fleet = cp.fleet();
    await fleet.create({ name: 'short', lifetimes: { root: 20 * DAY } });
    await fleet.create({ name: 'long' });
    await fleet.create({ name: 'rotating', lifetimes: { root: 20 * DAY } });
    const rotating = await fleet.update('rotating', { startCredentialRotation: true });
    assert.equal(rotating.rotation?.phase, 'moving');

    const immediate = join(tmp.path, 'trustplane-alerts-immediate.yaml');
    const shipped = readFileSync(ALERTS_FILE, 'utf8');
    const copy = shipped.replace(/^(\s*)for: \S+$/gm, '$1for: 0s').replace(/^(\s*)- name: trustplane$/m, '$1- name: trustplane-immediate');
    assert.notEqual(copy, shipped);
    writeFileSync(immediate, copy);
    const ep = JSON.parse(readFileSync(hostPaths(dataDir).endpoint, 'utf8')) as HostEndpoint;
    const config = join(tmp.path, 'prometheus.yml');
    // The README's scrape config, with this data dir's files.
    writeFileSync(
      config,
      [
        'global: { scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s }',
        `rule_files: ['${ALERTS_FILE}', '${immediate}']`,
        'scrape_configs:',
        '  - job_name: trustplane',
        '    scheme: https',
        '    authorization:',
        `      credentials_file: ${ep.metricsTokenFile}`,
        '    tls_config:',
        `      ca_file: ${caPaths(dataDir).serviceCa}`,
        `    static_configs: [{ targets: ['${new URL(ep.metricsUrl!).host}'] }]`,
        '',
      ].join('\n'),
    );
    prom = await startPrometheus(config, tmp.path);
    const p = prom;

    const firing = await waitFor(`${EXPIRY} firing for cluster short`, async () => {
      const { alerts } = await p.api<{ alerts: Alert[] }>('alerts');
      return alerts.some((a) => a.labels.alertname === EXPIRY && a.labels.cluster === 'short' && a.state === 'firing') ? alerts : undefined;
    }, 60000, 250);
    const expiry = firing.filter((a) => a.labels.alertname === EXPIRY && a.state === 'firing');
    assert.deepEqual(
      expiry.map((a) => `${a.labels.cluster}/${a.labels.authority}`),
      ['short/root'],
      'only the 20-day root CA with no rotation running',
    );
    assert.equal(expiry[0].labels.severity, 'warning');

    // The shipped rule (15 minutes of `for`) holds the same series as pending. Each group is evaluated on its own
    // schedule, so the shipped one may not have looked since the first scrape yet.
    const shippedAlerts = await waitFor('the shipped expiry rule to hold an alert', async () => {
      const groups = (await p.api<{ groups: Array<{ name: string; file: string; rules: Array<{ name: string; state: string; alerts?: Alert[] }> }> }>('rules')).groups;
      const alerts = groups.find((g) => g.file === ALERTS_FILE)?.rules.find((r) => r.name === EXPIRY)?.alerts ?? [];
      return alerts.length ? alerts : undefined;
    }, 30000, 250);
    assert.deepEqual(shippedAlerts.map((a) => [a.labels.cluster, a.state]), [['short', 'pending']]);

    // "long" and "rotating" were not left out for want of data: Prometheus holds their CA time left, and "rotating" its phase.
    const q = async (expr: string) => (await p.api<{ result: Array<{ metric: Record<string, string>; value: [number, string] }> }>(`query?query=${encodeURIComponent(expr)}`)).result;
    const ttl = await q('trustplane_ca_ttl_seconds{authority="root"}');
    const days = Object.fromEntries(ttl.map((r) => [r.metric.cluster, Math.round(Number(r.value[1]) / DAY)]));
    assert.ok(days.long > 3000, JSON.stringify(days));
    assert.ok(days.short <= 20, JSON.stringify(days));
    assert.ok(days.rotating <= 30, `the new generation of "rotating" also has ${days.rotating} days: only its rotation keeps the alert away`);
    const moving = await q('time() - trustplane_rotation_phase_started_timestamp_seconds{cluster="rotating",phase="moving"}');
    assert.equal(moving.length, 1);
    assert.ok(Number(moving[0].value[1]) >= 0 && Number(moving[0].value[1]) < 3600);
  });

  test('every metric the dashboard and the rules name is exported by the running host', async () => {
    const r = await scrapeMetrics(dataDir, 'token');
    assert.equal(r.status, 200, r.body);
    const exposed = exposedMetrics(r.body);
    const used = [...dashboardExprs().map((d) => ({ where: `dashboard panel "${d.panel}"`, expr: d.expr })), ...alertRules().map((a) => ({ where: `alert ${a.alert}`, expr: a.expr }))];
    const names = new Set(used.flatMap((u) => metricNamesOf(u.expr)));
    assert.ok(names.size >= 10, [...names].join(', '));
    for (const u of used) for (const n of metricNamesOf(u.expr)) assert.ok(exposed.has(n), `${u.where} uses ${n}, which the host's /metrics does not export`);
    // Each panel's query is valid PromQL that Prometheus answers (with the cluster variable at "All"), and the variable's
    // own query lists the clusters.
    for (const d of dashboardExprs().filter((x) => x.panel !== 'template variable')) {
      const result = await prom!.api<{ resultType: string }>(`query?query=${encodeURIComponent(d.expr.replace(/\$cluster/g, '.*'))}`).catch((e: Error) => assert.fail(`panel "${d.panel}": ${e.message}`));
      assert.ok(result.resultType, d.panel);
    }
    const clusters = await prom!.api<string[]>(`label/cluster/values?${new URLSearchParams({ 'match[]': 'trustplane_cluster_status' })}`);
    assert.deepEqual([...clusters].sort(), ['long', 'rotating', 'short']);
    // Beyond a declaration: the gauges the dashboard draws carry samples for these clusters.
    for (const n of ['trustplane_ca_ttl_seconds', 'trustplane_cluster_status', 'trustplane_rotation_phase', 'trustplane_rotation_phase_started_timestamp_seconds', 'trustplane_nodes_on_retired_generation', 'trustplane_nodes_near_certificate_expiry'])
      assert.ok((exposed.get(n)?.samples ?? 0) > 0, `${n} has samples`);
  });
});
