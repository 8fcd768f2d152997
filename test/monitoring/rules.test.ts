// The shipped alert rules and dashboard (deploy/monitoring/) as Debian's promtool checks them, their own unit tests
// (`promtool test rules`), and the metric names they use: all of them registered by the host's metrics.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ALERTS_FILE, ALERTS_TEST_FILE, DASHBOARD_FILE, MONITORING_DIR, alertRules, dashboardExprs, metricNamesOf } from '../helpers/monitoring.js';
import { tempDir } from '../helpers/tmp.js';

const promtool = (args: string[], cwd = MONITORING_DIR) => {
  const r = spawnSync('promtool', args, { cwd, encoding: 'utf8', timeout: 60000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
};

describe('monitoring files (deploy/monitoring)', () => {
  test('promtool check rules accepts the alert rules', () => {
    const r = promtool(['check', 'rules', ALERTS_FILE]);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /SUCCESS: 6 rules found/);
  });

  test('promtool test rules: every alert fires on what should raise it and not otherwise', () => {
    const r = promtool(['test', 'rules', ALERTS_TEST_FILE]);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /SUCCESS/);
  });

  test('the rule unit tests catch an expiry alert that forgets the running rotation', () => {
    // The same unit tests against a copy whose expiry rule lost its `unless`: they must fail, naming the rotating cluster.
    const tmp = tempDir('tp-rules-');
    try {
      const broken = readFileSync(ALERTS_FILE, 'utf8').replace(/\n\s*unless on \(cluster, authority\)\n\s*trustplane_rotation_phase\{phase!="done"\} == 1/, '');
      assert.notEqual(broken, readFileSync(ALERTS_FILE, 'utf8'));
      writeFileSync(join(tmp.path, 'trustplane-alerts.yaml'), broken);
      copyFileSync(ALERTS_TEST_FILE, join(tmp.path, 'trustplane-alerts.test.yaml'));
      const r = promtool(['test', 'rules', 'trustplane-alerts.test.yaml'], tmp.path);
      assert.equal(r.status, 1, r.out);
      assert.match(r.out, /cluster="rotating"/);
    } finally {
      tmp.remove();
    }
  });

  test('the rules cover what the issue asks for, each with a summary', () => {
    const rules = alertRules();
    assert.deepEqual(rules.map((r) => r.alert).sort(), [
      'TrustplaneCAExpiringWithoutRotation',
      'TrustplaneClusterDegraded',
      'TrustplaneNodeCertificatesNearExpiry',
      'TrustplaneNodesOnRetiredGeneration',
      'TrustplaneRotationStuck',
      'TrustplaneSigningRefusalsSpiking',
    ]);
    for (const r of rules) {
      assert.match(r.annotations?.summary ?? '', /\{\{ \$labels\.cluster \}\}/, `${r.alert} names the cluster in its summary`);
      assert.ok(r.annotations?.description, `${r.alert} says what to do`);
      assert.ok(['warning', 'critical'].includes(r.labels?.severity ?? ''), `${r.alert} has a severity`);
    }
  });

  test('metric names are read from PromQL as Prometheus would: not labels, functions, keywords or variables', () => {
    assert.deepEqual(metricNamesOf('sum by (cluster, signer) (increase(a_total{cluster=~"$cluster",x="b_c"}[10m])) > 5 unless on (cluster) b == 1 or vector(0)'), ['a_total', 'b']);
    assert.deepEqual(metricNamesOf('time() - c_seconds{phase!="done"} > 3600 and ignoring(phase) d'), ['c_seconds', 'd']);
    assert.deepEqual(metricNamesOf('count(e <= 30 * 86400) or vector(0)'), ['e']);
  });

  test('every metric the rules and the dashboard name is one the host registers (src/fleet/metrics.ts)', () => {
    const source = readFileSync(new URL('../../../src/fleet/metrics.ts', import.meta.url), 'utf8');
    const registered = new Set([...source.matchAll(/name: '(trustplane_\w+)'/g)].map((m) => m[1]));
    const used = [...alertRules().map((r) => ({ panel: r.alert!, expr: r.expr })), ...dashboardExprs(DASHBOARD_FILE)];
    assert.ok(used.length > 15);
    for (const { panel, expr } of used) {
      const names = metricNamesOf(expr);
      assert.ok(names.length > 0, `${panel}: no metric in ${expr}`);
      for (const n of names) assert.ok(registered.has(n), `${panel} uses ${n}, which the host does not register`);
    }
  });
});
