// `trustplane store member` as a process, with a stand-in for etcd (a shell script that records its PID): a supervisor
// killed with -9 leaves etcd running, and the next one takes it over rather than start a second etcd; one killed in
// the middle of a restart leaves the restart for the next to finish. Neither needs the CA service, which is down here:
// the member starts on the certificate files it has. Bad input is refused before anything starts.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { memberFiles } from '../../src/store/member-supervisor.js';
import { waitFor } from '../../src/util/wait.js';
import { exited, isAlive, killChild, tpSpawn } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

const tmp = tempDir('tp-store-member-');
const started: Array<ReturnType<typeof tpSpawn>> = [];
after(async () => {
  for (const s of started) await killChild(s.child, 'SIGKILL');
  for (const pid of pids()) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  tmp.remove();
});

const dir = join(tmp.path, 'm0-tls');
const pidLog = join(tmp.path, 'etcd-pids');
const fakeEtcd = join(tmp.path, 'fake-etcd');
writeFileSync(fakeEtcd, `#!/bin/sh\necho $$ >> ${pidLog}\ntrap 'exit 0' TERM\nwhile :; do sleep 0.1; done\n`);
chmodSync(fakeEtcd, 0o755);
function pids(): number[] {
  try {
    return readFileSync(pidLog, 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

// Files of an earlier start (their contents do not matter to the stand-in).
const f = memberFiles(dir, 'm0');
mkdirSync(dir, { recursive: true });
for (const p of [f['etcd-api-ca.crt'], f['etcd-peer-ca.crt'], f.server.cert, f.server.key, f.peer.cert, f.peer.key]) {
  writeFileSync(p, 'placeholder\n', { mode: 0o600 });
}

const member = () => {
  const s = tpSpawn(['store', 'member', 'c1', '--member', 'm0', '--out', dir, '--etcd-endpoints', 'https://127.0.0.1:1', '--sync-interval', '1s', '--data-dir', join(tmp.path, 'no-control-plane'), '--', fakeEtcd, '--name=m0', '--advertise-client-urls=https://127.0.0.1:1']);
  started.push(s);
  return s;
};

test('a supervisor killed with -9 leaves etcd running; the next takes it over, or finishes the restart it was in', async () => {
  const first = member();
  await waitFor('etcd to start', () => (pids().length === 1 ? true : undefined), 20000);
  assert.match(first.output(), /the CA service does not answer: starting etcd on the certificate files it has/);
  const [etcd1] = pids();
  await killChild(first.child, 'SIGKILL');
  assert.ok(isAlive(etcd1), 'etcd outlives its supervisor');

  const second = member();
  await waitFor('the takeover', () => (/took over the etcd a previous `store member` left running/.test(second.output()) ? true : undefined), 20000);
  assert.deepEqual(pids(), [etcd1], 'no second etcd');
  assert.ok(isAlive(etcd1));

  // Killed between stopping etcd for a restart and starting it again (as recorded just before the SIGTERM).
  await killChild(second.child, 'SIGKILL');
  const state = join(dir, 'etcd.json');
  writeFileSync(state, JSON.stringify({ ...JSON.parse(readFileSync(state, 'utf8')), restarting: true }));
  const third = member();
  await waitFor('a new etcd', () => (pids().length === 2 ? true : undefined), 20000);
  assert.match(third.output(), /finishing the restart of etcd a previous `store member` began/);
  await waitFor('the old etcd to be gone', () => (!isAlive(etcd1) ? true : undefined), 10000);

  // SIGTERM stops etcd, then the supervisor, cleanly.
  third.child.kill('SIGTERM');
  assert.equal(await exited(third.child, 20000), 0);
  assert.equal(isAlive(pids()[1]), false);

  // One supervisor per member: a second one for the same directory is refused.
  const a = member();
  await waitFor('etcd to start', () => (pids().length === 3 ? true : undefined), 20000);
  const b = member();
  assert.notEqual(await exited(b.child, 20000), 0);
  assert.match(b.output(), /trustplane store member m0 is already running/);
  a.child.kill('SIGTERM');
  assert.equal(await exited(a.child, 20000), 0);
});
