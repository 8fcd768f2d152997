// The etcd CAs of a cluster on a real 3-member etcd cluster (Debian's etcd 3.4) rotate by themselves: each member runs
// under `trustplane store member`, which re-issues its certificates (etcd reloads them per handshake) and restarts it on
// the new trusted CA files one member at a time. A stream of API writes goes on throughout: none fails, none is lost.
// The supervisor of one member is killed with -9 in the middle and started again. Afterwards the members serve certificates of the new generations, etcdctl on credentials of the retired etcd API CA is
// refused by every member, and on new ones it works.
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { after, describe, test } from 'node:test';
import type { FleetCluster } from '../../src/fleet/api.js';
import { MEMBER_REPORTS, type MemberReport } from '../../src/fleet/etcd-members.js';
import { parseCertificates } from '../../src/pki/index.js';
import { waitFor } from '../../src/util/wait.js';
import { exited, isAlive, killChild, tp, tpSpawn } from '../helpers/cli.js';
import { ClusterWithNodes, generationStates, leaseWriter } from '../helpers/cluster-nodes.js';
import { freePorts } from '../helpers/etcd-cluster.js';

const DAY = 86400;

describe('etcd CA rotation on a real 3-member etcd cluster run by `trustplane store member`', () => {
  const env = new ClusterWithNodes('tp-e2e-etcd-members-');
  const { tmp, dataDir } = env;
  const supervisors: Array<{ child: ChildProcess; output: () => string }> = [];
  const etcdPids = new Set<number>();
  after(async () => {
    for (const s of supervisors) await killChild(s.child, 'SIGTERM').catch(() => killChild(s.child));
    // An etcd whose supervisor died without stopping it is ours too: stopped by the PID its reports named.
    for (const pid of etcdPids) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    await env.cleanup();
  });

  const tpj = (args: string[]) => {
    const r = tp([...args, '--data-dir', dataDir, '-o', 'json']);
    assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  const etcdctl = (files: Record<string, string>, endpoint: string, args: string[]) =>
    spawnSync('etcdctl', ['--endpoints', endpoint, '--cacert', files['ca.crt'], '--cert', files['client.crt'], '--key', files['client.key'], '--dial-timeout', '3s', '--command-timeout', '5s', ...args], {
      encoding: 'utf8',
      env: { ...process.env, ETCDCTL_API: '3' },
      timeout: 20000,
    });
  /** The subject key id of the CA that issued the certificate a member serves on its client port. */
  const servedIssuer = (endpoint: string, files: Record<string, string>) =>
    new Promise<string>((resolve, reject) => {
      const u = new URL(endpoint);
      const s = connect({ host: u.hostname, port: Number(u.port), ca: readFileSync(files['ca.crt']), cert: readFileSync(files['client.crt']), key: readFileSync(files['client.key']), servername: 'localhost' }, () => {
        const aki = s.getPeerX509Certificate()?.raw;
        s.destroy();
        resolve(parseCertificates(`-----BEGIN CERTIFICATE-----\n${aki!.toString('base64')}\n-----END CERTIFICATE-----\n`)[0].authorityKeyId!.toString('hex'));
      });
      s.once('error', reject);
    });

  test('both etcd CAs rotate with members restarted one at a time; no write fails or is lost', async () => {
    const cp = await env.start({ hostArgs: ['--lifetime-check-interval', '1s'] });
    const ports = await freePorts(6);
    const clientUrls = [0, 1, 2].map((i) => `https://127.0.0.1:${ports[2 * i]}`);
    const peerUrls = [0, 1, 2].map((i) => `https://127.0.0.1:${ports[2 * i + 1]}`);
    // 60-day etcd CAs: due for rotation (90 days) as soon as the cluster runs.
    await cp.fleet().create({ name: 'ext', store: { type: 'etcd', endpoints: clientUrls }, lifetimes: { 'etcd-api': 60 * DAY, 'etcd-peer': 60 * DAY } });
    const before = tpj(['store', 'credentials', 'ext', '--out', join(tmp.path, 'creds-g1')]).files as Record<string, string>;

    const memberArgs: string[][] = [];
    const initialCluster = peerUrls.map((u, i) => `m${i}=${u}`).join(',');
    for (let i = 0; i < 3; i++) {
      const etcd = [
        '/usr/bin/etcd',
        `--name=m${i}`,
        `--data-dir=${join(tmp.path, `m${i}`)}`,
        `--listen-client-urls=${clientUrls[i]}`,
        `--advertise-client-urls=${clientUrls[i]}`,
        `--listen-peer-urls=${peerUrls[i]}`,
        `--initial-advertise-peer-urls=${peerUrls[i]}`,
        `--initial-cluster=${initialCluster}`,
        '--initial-cluster-token=tp-members',
        '--initial-cluster-state=new',
        '--logger=zap',
        '--log-level=warn',
      ];
      memberArgs.push(['store', 'member', 'ext', '--member', `m${i}`, '--out', join(tmp.path, `m${i}-tls`), '--sync-interval', '1s', '--data-dir', dataDir, '--', ...etcd]);
      supervisors.push(tpSpawn(memberArgs[i]));
    }
    const diag = () => `${supervisors.map((x) => x.output().slice(-4000)).join('\n---\n')}\n--- host\n${cp.host.output().slice(-6000)}`;
    const describeIt = () => tpj(['clusters', 'describe', 'ext']) as FleetCluster;
    await waitFor('the cluster to run on its etcd members', () => (describeIt().status !== 'PROVISIONING' ? true : undefined), 60000, 250).catch((e: Error) => {
      throw new Error(`${e.message}\n${supervisors.map((x) => x.output().slice(-2000)).join('\n---\n')}`);
    });

    // A steady stream of writes through the API server, each a write to etcd, counted when acknowledged.
    const { client: admin } = await env.admin('ext');
    const writer = leaseWriter(admin);
    const { acked, failed } = writer;

    // The supervisor of m1 is killed with -9 during the first rotation and started again: it takes over the etcd the
    // killed one left running (or finishes the restart it was in, or starts etcd if it was stopped), and the rotation goes on. Both cases, each made
    // certain, are in test/store/member-supervisor.test.ts.
    await waitFor('the etcd API CA rotation to be moving', () => (describeIt().rotation?.phase === 'moving' ? true : undefined), 60000, 200);
    await killChild(supervisors[1].child, 'SIGKILL');
    // Until it is back, check-credential-lifetime names m1 (or its endpoint, when killed in the middle of a restart).
    const waiting = await waitFor('m1 among what the rotation waits for', () => {
      const l = tpj(['clusters', 'check-credential-lifetime', 'ext']) as { waitingFor?: string[] };
      return l.waitingFor?.some((w) => w === 'm1' || w.startsWith(clientUrls[1])) ? l.waitingFor : undefined;
    }, 20000, 200);
    assert.ok(waiting.length >= 1 && waiting.length <= 3, waiting.join());
    supervisors[1] = tpSpawn(memberArgs[1]);

    const done = await waitFor('both etcd CAs rotated', () => {
      const c = describeIt();
      return generationStates(c, 'etcd-api') === 'retired (no key),active' && generationStates(c, 'etcd-peer') === 'retired (no key),active' && c.status === 'RUNNING' ? c : undefined;
    }, 120000, 1000).catch((e: Error) => {
      void writer.stop();
      throw new Error(`${e.message}\n${describeIt().statusMessage}\n${diag()}`);
    });
    // The members drop the retired generations from their trust: one more restart each, while writes go on.
    const reports = await waitFor('every member to trust only the new generations', () => {
      const r = etcdctl(tpj(['store', 'credentials', 'ext', '--out', join(tmp.path, 'creds-now')]).files, clientUrls.join(','), ['get', MEMBER_REPORTS, '--prefix', '--print-value-only']);
      if (r.status !== 0) return undefined;
      const rs = r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as MemberReport);
      for (const x of rs) etcdPids.add(x.pid);
      return rs.length === 3 && rs.every((x) => x.trusts['etcd-api'].join() === '2' && x.trusts['etcd-peer'].join() === '2' && x.certificates['etcd-api'] === 2 && x.certificates['etcd-peer'] === 2) ? rs : undefined;
    }, 120000, 1000).catch(async (e: Error) => {
      await writer.stop();
      throw e;
    });
    await new Promise((r) => setTimeout(r, 1000)); // writes go on after the members have moved
    await writer.stop();

    assert.deepEqual(failed, [], `no write failed\n${failed.length ? diag() : ''}`);
    assert.ok(acked.length > 100, `writes ran throughout (${acked.length})`);
    assert.deepEqual(await writer.lost(), [], 'every acknowledged write is there');
    assert.equal(generationStates(done, 'root'), 'active', 'the cluster root CA was left alone');
    assert.equal(new Set(reports.map((r) => r.pid)).size, 3);
    for (const s of supervisors) assert.match(s.output(), /restarting etcd on the new trusted CA files/, 'each member was restarted by its supervisor');
    // Which one depends on where the kill fell: etcd running, stopping for a restart, or already stopped.
    assert.match(supervisors[1].output(), /took over the etcd a previous `store member` left running|finishing the restart of etcd a previous `store member` began|"msg":"etcd started"/);

    // Every member serves a certificate of the new etcd API CA generation, and refuses the retired generation's client.
    const now = tpj(['store', 'credentials', 'ext', '--out', join(tmp.path, 'creds-g2')]).files as Record<string, string>;
    const newSki = parseCertificates(done.authorities.find((a) => a.kind === 'etcd-api')!.generations.find((g) => g.state === 'active')!.certificate!)[0].subjectKeyId!.toString('hex');
    for (const url of clientUrls) {
      assert.equal(await servedIssuer(url, now), newSki, `${url} serves from the new generation`);
      const ok = etcdctl(now, url, ['get', `/registry/leases/kube-node-lease/${acked[0]}`, '--keys-only']);
      assert.equal(ok.status, 0, ok.stderr);
      assert.equal(etcdctl(before, url, ['get', '/x']).status === 0, false, `${url} refuses the retired generation`);
    }

    // SIGTERM stops each supervisor and its etcd.
    for (const s of supervisors) {
      s.child.kill('SIGTERM');
      assert.equal(await exited(s.child, 30000), 0);
    }
    for (const r of reports) assert.equal(isAlive(r.pid), false, `etcd ${r.member} (pid ${r.pid}) stopped with its supervisor`);

    // etcd does not wait for the control plane: with the CA service down, a member starts on the files it has.
    await cp.ca.stop();
    const alone = tpSpawn(memberArgs[0]);
    supervisors.push(alone);
    await waitFor('m0 to start without the CA service', () => (/starting etcd on the certificate files it has/.test(alone.output()) && /"msg":"etcd started"/.test(alone.output()) ? true : undefined), 20000, 100);
    assert.equal(alone.child.exitCode, null, alone.output());
    alone.child.kill('SIGTERM');
    assert.equal(await exited(alone.child, 30000), 0);
  });

  test('`store member` refuses TLS flags of its own and a member without a client URL, before starting anything', () => {
    const run = (etcd: string[]) => tp(['store', 'member', 'ext', '--member', 'm9', '--out', join(tmp.path, 'm9'), '--data-dir', dataDir, '--', '/usr/bin/etcd', ...etcd]);
    const own = run(['--advertise-client-urls=https://127.0.0.1:2379', '--cert-file=/tmp/x.crt']);
    assert.equal(own.status, 2, own.stderr);
    assert.match(own.stderr, /--cert-file is set by `trustplane store member`/);
    const noUrl = run(['--name=m9']);
    assert.equal(noUrl.status, 2, noUrl.stderr);
    assert.match(noUrl.stderr, /no --advertise-client-urls/);
    const plain = run(['--advertise-client-urls=http://127.0.0.1:2379']);
    assert.match(plain.stderr, /is not https/);
  });
});
