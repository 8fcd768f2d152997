// The lifetime controller with real processes: a cluster root CA with 30 days or less left is rotated automatically and,
// without nodes to wait for, completed; one with 7 days or less is DEGRADED with what to do; a maintenance window holds
// the automatic completion back; all of it visible in describe, check-credential-lifetime and the host's /metrics.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { waitFor } from '../../src/util/wait.js';
import { tp } from '../helpers/cli.js';
import { startControlPlane, type ControlPlane } from '../helpers/control-plane.js';
import { scrapeMetrics } from '../helpers/metrics.js';
import { tempDir } from '../helpers/tmp.js';

const DAY = 86400;

describe('lifetime controller: automatic rotation at 30 days, DEGRADED at 7 days, metrics (real processes)', () => {
  const tmp = tempDir('tp-e2e-lifetime-');
  const dataDir = join(tmp.path, 'data');
  let cp: ControlPlane | undefined;
  after(async () => {
    await cp?.stop();
    tmp.remove();
  });
  const tpj = (args: string[]) => {
    const r = tp([...args, '--data-dir', dataDir, '-o', 'json']);
    assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  const metrics = async () => {
    const r = await scrapeMetrics(dataDir, 'token');
    assert.equal(r.status, 200, r.body);
    return r.body;
  };
  const gauge = (text: string, name: string, labels: string) => {
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && labels.split(',').every((kv) => l.includes(kv)));
    return line === undefined ? undefined : Number(line.split(' ').pop());
  };

  test('a 20-day root CA rotates and completes by itself; a 5-day one is DEGRADED; a maintenance window holds completion', async () => {
    cp = await startControlPlane(dataDir, { hostArgs: ['--lifetime-check-interval', '1s'] });
    const window = new Date(Date.now() + 12 * 3600 * 1000); // twelve hours from now: not open during this test
    const hhmm = `${String(window.getUTCHours()).padStart(2, '0')}:${String(window.getUTCMinutes()).padStart(2, '0')}`;
    tpj(['clusters', 'create', 'soon', '--root-ca-lifetime', '20d']);
    tpj(['clusters', 'create', 'held', '--root-ca-lifetime', '20d', '--maintenance-window', `${hhmm}/2h`]);
    tpj(['clusters', 'create', 'late', '--root-ca-lifetime', '5d']);
    tpj(['clusters', 'create', 'fine']);

    const soon = await waitFor('the automatic rotation of "soon" to complete', () => {
      const c = tpj(['clusters', 'describe', 'soon']);
      return c.rotation?.phase === 'done' ? c : undefined;
    }, 30000, 250);
    assert.equal(soon.rotation.trigger, 'automatic');
    assert.deepEqual(soon.authorities.find((a: { kind: string }) => a.kind === 'root').generations.map((g: { state: string }) => g.state), ['retired', 'active']);
    assert.equal(soon.status, 'RUNNING');

    // Started (30 days) whatever the window, but completing is optional work: it waits for the window.
    const held = await waitFor('the rotation of "held" to reach moving', () => {
      const c = tpj(['clusters', 'describe', 'held']);
      return c.rotation?.phase === 'moving' ? c : undefined;
    }, 30000, 250);
    assert.equal(held.status, 'RECONCILING');
    // A look of the controller made since: its first look at a cluster created now logs that cluster's status, and each
    // look steps the clusters in the order they were created, so "held" (moving) was looked at before it.
    tpj(['clusters', 'create', 'probe', '--root-ca-lifetime', '5d']);
    await waitFor('a look of the lifetime controller at the new cluster', () => /"cluster":"probe","status":"DEGRADED"/.test(cp!.host.output()) || undefined, 30000, 100);
    assert.equal(tpj(['clusters', 'describe', 'held']).rotation.phase, 'moving', 'completion waits for the maintenance window');
    const life = tpj(['clusters', 'check-credential-lifetime', 'held']);
    const root = life.authorities.find((a: { kind: string }) => a.kind === 'root');
    assert.equal(root.next.action, 'complete-rotation');
    assert.ok(root.secondsLeft > 19 * DAY && root.secondsLeft <= 20 * DAY);

    const late = await waitFor('"late" to be DEGRADED', () => {
      const c = tpj(['clusters', 'describe', 'late']);
      return c.status === 'DEGRADED' ? c : undefined;
    }, 30000, 250);
    assert.match(late.statusMessage, /cluster root CA expires at .*in 1[12]\d hours/);
    assert.match(late.statusMessage, /--complete-credential-rotation|--start-credential-rotation/);
    const lateText = tp(['clusters', 'check-credential-lifetime', 'late', '--data-dir', dataDir]);
    assert.equal(lateText.status, 0);
    assert.match(lateText.stdout, /cluster late: DEGRADED/);
    assert.equal(tpj(['clusters', 'describe', 'fine']).status, 'RUNNING');

    const m = await metrics();
    const ttlSoon = gauge(m, 'trustplane_ca_ttl_seconds', 'cluster="soon",authority="root"')!;
    assert.ok(ttlSoon > 19 * DAY && ttlSoon <= 20 * DAY, `ttl ${ttlSoon}`);
    assert.equal(gauge(m, 'trustplane_ca_active_generation', 'cluster="soon",authority="root"'), 2);
    assert.ok(gauge(m, 'trustplane_ca_ttl_seconds', 'cluster="fine",authority="root"')! > 9 * 365 * DAY);
    assert.ok(gauge(m, 'trustplane_ca_expiration_timestamp_seconds', 'cluster="fine",authority="etcd-api"')! > Date.now() / 1000 + 4 * 365 * DAY);
    assert.equal(gauge(m, 'trustplane_rotation_phase', 'cluster="held",authority="root",phase="moving"'), 1);
    assert.equal(gauge(m, 'trustplane_rotation_phase', 'cluster="soon",authority="root",phase="done"'), 1);
    assert.equal(gauge(m, 'trustplane_cluster_status', 'cluster="late",status="DEGRADED"'), 1);
    assert.equal(gauge(m, 'trustplane_cluster_status', 'cluster="held",status="RECONCILING"'), 1);
    assert.equal(gauge(m, 'trustplane_cluster_status', 'cluster="fine",status="RUNNING"'), 1);

    // Each status change left a line in the host's log.
    const log = cp.host.output();
    assert.match(log, /"cluster":"late","status":"DEGRADED"/);
    assert.match(log, /credential rotation: done/);
  });
});
