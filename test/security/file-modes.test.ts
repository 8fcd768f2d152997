// Every file a running control plane and node agent write (state.db and its -wal/-shm, keys, endpoints, PID files,
// kubeconfigs, audit and process logs) is 0600 and every directory 0700, whatever the umask of whoever started them.
import assert from 'node:assert/strict';
import { existsSync, lstatSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import type { Node } from '../../src/apiserver/index.js';
import { clusterPaths } from '../../src/util/datadir.js';
import { preparePrivateDatabase } from '../../src/util/files.js';
import { waitFor } from '../../src/util/wait.js';
import { tp } from '../helpers/cli.js';
import { ClusterWithNodes } from '../helpers/cluster-nodes.js';
import { tempDir } from '../helpers/tmp.js';

/** Every entry under `root` whose mode is not 0600 (files) or 0700 (directories), as "path mode". */
function looseModes(root: string): { checked: string[]; loose: string[] } {
  const checked: string[] = [];
  const loose: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      const st = lstatSync(p);
      if (st.isSymbolicLink() || st.isSocket()) continue;
      const mode = st.mode & 0o777;
      checked.push(p);
      if (st.isDirectory()) {
        if (mode !== 0o700) loose.push(`${p} ${mode.toString(8)}`);
        walk(p);
      } else if (mode !== 0o600) loose.push(`${p} ${mode.toString(8)}`);
    }
  };
  walk(root);
  return { checked, loose };
}

const ready = (n: Node) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

describe('file modes: state, keys, logs and PID files are the owner\'s only (real processes)', () => {
  const env = new ClusterWithNodes('tp-modes-');
  // The test runner's own umask is the usual 022: the processes must not depend on whoever started them.
  const umask = process.umask(0o022);
  after(async () => {
    await env.cleanup();
    process.umask(umask);
  });

  test('after a cluster is created, written to and a node joined, every file is 0600 and every directory 0700', async () => {
    const cp = await env.start();
    const f = cp.fleet();
    await f.create({ name: 'modes' });
    await f.bootstrapToken('modes', 'default-pool', { ttlSeconds: 600 });
    env.join('modes', 'modes-node-1');
    const { client: api } = await env.admin('modes');
    await waitFor('the node to be Ready', async () => ((await api.get<{ items: Node[] }>('/api/v1/nodes')).items.some(ready) ? true : undefined), 90000, 200);
    // Store writes through the API server, and a kubeconfig written by the CLI.
    for (let i = 0; i < 20; i++)
      await api.post('/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases', { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: `m-${i}`, namespace: 'kube-node-lease' }, spec: { holderIdentity: 'x' } });
    const kc = join(env.dataDir, 'kube', 'config');
    const r = tp(['clusters', 'get-credentials', 'modes', '--data-dir', env.dataDir], { env: { KUBECONFIG: kc } });
    assert.equal(r.status, 0, r.stderr);

    const db = clusterPaths(env.dataDir, 'modes').storeDb;
    assert.ok(existsSync(db) && existsSync(`${db}-wal`), 'the store runs in WAL mode, so state.db-wal exists while it runs');
    const { checked, loose } = looseModes(env.tmp.path);
    for (const must of [db, `${db}-wal`, join(env.dataDir, 'ca', 'audit.log'), join(env.dataDir, 'ca', 'ca.pid'), join(env.dataDir, 'host', 'host.pid'), join(env.dataDir, 'host', 'endpoint.json'), join(env.tmp.path, 'modes-node-1', 'agent.log'), kc])
      assert.ok(checked.includes(must), `${must} was among the files checked`);
    assert.ok(checked.some((p) => p.includes(join('ca', 'keystore'))), 'the key store was checked');
    assert.deepEqual(loose, [], 'files not 0600 / directories not 0700');
  });
});

describe('SQLite files follow the database file mode', () => {
  const tmp = tempDir('tp-modes-sqlite-');
  after(() => tmp.remove());

  test('with a umask of 022, -wal and -shm of a database prepared 0600 are 0600; an older 0644 database is tightened', () => {
    const umask = process.umask(0o022);
    try {
      for (const fresh of [true, false]) {
        const path = join(tmp.path, `state-${fresh}.db`);
        if (!fresh) new Database(path).pragma('journal_mode = WAL');
        if (!fresh) assert.equal(statSync(path).mode & 0o777, 0o644, 'the old database starts 0644');
        preparePrivateDatabase(path);
        const db = new Database(path);
        db.pragma('journal_mode = WAL');
        db.exec('CREATE TABLE IF NOT EXISTS t (v TEXT)');
        db.prepare('INSERT INTO t VALUES (?)').run('x');
        for (const p of [path, `${path}-wal`, `${path}-shm`]) {
          assert.ok(existsSync(p), `${p} exists`);
          assert.equal(statSync(p).mode & 0o777, 0o600, `${p} is 0600`);
        }
        db.pragma('wal_checkpoint(TRUNCATE)');
        db.prepare('INSERT INTO t VALUES (?)').run('y');
        assert.equal(statSync(`${path}-wal`).mode & 0o777, 0o600, 'still 0600 after a checkpoint');
        db.close();
      }
    } finally {
      process.umask(umask);
    }
  });
});
