// Two-phase rotation of the cluster root CA with its keys in a SoftHSM2 token, through the whole product: the CA service
// (`trustplane ca serve --keystore pkcs11`) and the control plane host as child processes, the rotation started and
// completed with the CLI, and the token read independently with OpenSC's pkcs11-tool before, during and after: the old
// generation's key objects are destroyed on the token, nothing else is; an admin kubeconfig from before keeps working
// until completion and is refused after it with what to do.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { caPaths } from '../../src/util/datadir.js';
import { tp } from '../helpers/cli.js';
import { startControlPlane, type ControlPlane } from '../helpers/control-plane.js';
import { tempDir } from '../helpers/tmp.js';
import {
  listTokenObjects,
  makeSoftHsmToken,
  pkcs11ToolAvailable,
  removeSoftHsmTokens,
  softHsmAvailable,
  type SoftHsmToken,
  type TokenObject,
} from '../keystore/softhsm.js';

const KUBECTL = '/usr/bin/kubectl';
const CLUSTER = 'hsmrot';

interface GenerationJson {
  generation: number;
  state: string;
  keyLabel: string;
  hasKey: boolean;
}
interface ClusterJson {
  status: string;
  rotation?: { phase: string; from: number; to?: number; forced?: string[] };
  authorities: Array<{ kind: string; bundle: string; generations: GenerationJson[] }>;
}

describe('credential rotation of a cluster root CA whose keys live in SoftHSM2 (real processes, pkcs11-tool, kubectl)', () => {
  const tmp = tempDir('tp-e2e-rotation-hsm-');
  const dataDir = join(tmp.path, 'data');
  let token: SoftHsmToken;
  let cp: ControlPlane | undefined;

  const tpj = (args: string[]): ClusterJson & Record<string, unknown> => {
    const r = tp([...args, '--data-dir', dataDir, '-o', 'json']);
    assert.equal(r.status, 0, `trustplane ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  const kubectl = (kubeconfig: string, args: string[]) => {
    const r = spawnSync(KUBECTL, ['--kubeconfig', kubeconfig, '--cache-dir', mkdtempSync(join(tmp.path, 'kc-cache-')), ...args], { encoding: 'utf8', timeout: 30000 });
    return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  };
  const rootOf = (c: ClusterJson) => c.authorities.find((a) => a.kind === 'root')!;
  /** The key objects (private and public) carrying `label`, as pkcs11-tool lists them. */
  const withLabel = (objects: TokenObject[], label: string) => objects.filter((o) => o.label === label);
  /** The token listed by pkcs11-tool, in a stable order (the token's own order is not promised). */
  const tokenObjects = () =>
    listTokenObjects(token).sort((a, b) => `${a.kind}\0${a.label}\0${a.id}`.localeCompare(`${b.kind}\0${b.label}\0${b.id}`));
  const kinds = (objects: TokenObject[]) => objects.map((o) => o.kind).sort();
  const describeObjects = (objects: TokenObject[]) => objects.map((o) => `${o.kind} ${o.label} ${o.id}`).join('\n');

  before(async () => {
    // The same rule as test/ca/hsm.test.ts: SoftHSM2 is required, not optional (.ci/run installs it, and opensc).
    assert.ok(softHsmAvailable(), 'SoftHSM2 (/usr/lib/softhsm/libsofthsm2.so, Debian package softhsm2) is required; .ci/run installs it');
    assert.ok(pkcs11ToolAvailable(), 'pkcs11-tool (Debian package opensc) is required to read the token independently; .ci/run installs it');
    token = makeSoftHsmToken();
    const pinFile = join(tmp.path, 'pin');
    writeFileSync(pinFile, `${token.pin}\n`, { mode: 0o600 });
    cp = await startControlPlane(dataDir, {
      caArgs: ['--keystore', 'pkcs11', '--pkcs11-module', token.module, '--pkcs11-token', token.tokenLabel, '--pkcs11-pin-file', pinFile],
      // The PIN comes from the file only.
      caEnv: { ...token.env, TRUSTPLANE_PKCS11_PIN: undefined },
    });
  });
  after(async () => {
    await cp?.stop();
    removeSoftHsmTokens();
    tmp.remove();
  });

  test('start → complete: old root key destroyed on the token, new one kept; old kubeconfig works until complete, refused after', () => {
    assert.ok(cp, 'control plane started');
    assert.equal((tpj(['ca', 'status']) as unknown as { keystore: string }).keystore, 'pkcs11');

    // ---- before the rotation ----
    const created = tpj(['clusters', 'create', CLUSTER]);
    assert.equal(created.status, 'RUNNING');
    const g1 = rootOf(created).generations[0];
    assert.deepEqual([g1.generation, g1.state, g1.hasKey], [1, 'active', true]);
    assert.match(g1.keyLabel, new RegExp(`^cluster/${CLUSTER}/[0-9a-f-]+/root/g1$`));
    const g2Label = g1.keyLabel.replace(/\/g1$/, '/g2');

    const beforeStart = tokenObjects();
    const g1Objects = withLabel(beforeStart, g1.keyLabel);
    assert.deepEqual(kinds(g1Objects), ['Private Key Object', 'Public Key Object'], `g1 key pair on the token:\n${describeObjects(beforeStart)}`);
    const g1Id = g1Objects[0].id!;
    assert.match(g1Id, /^[0-9a-f]{32}$/, 'the key store names keys by a 16-byte CKA_ID');
    assert.equal(g1Objects[1].id, g1Id, 'private and public objects share the CKA_ID');
    const g1Private = g1Objects.find((o) => o.kind === 'Private Key Object')!;
    assert.match(g1Private.access ?? '', /\bsensitive\b.*never extractable/, 'the CA key is sensitive and never extractable');
    assert.deepEqual(withLabel(beforeStart, g2Label), [], 'no g2 key yet');
    // The other keys on the token (etcd API and peer CAs, the CA service's own): none may be touched by the rotation.
    const others = beforeStart.filter((o) => o.id !== g1Id);
    assert.ok(others.some((o) => /\/etcd-api\/g1$/.test(o.label ?? '')) && others.some((o) => /\/etcd-peer\/g1$/.test(o.label ?? '')), describeObjects(beforeStart));

    const oldKc = join(tmp.path, 'old.kubeconfig');
    const got = tpj(['clusters', 'get-credentials', CLUSTER, '--kubeconfig', oldKc]);
    assert.equal(got.context, `trustplane_${CLUSTER}`);
    const oldKcText = readFileSync(oldKc, 'utf8');
    const k0 = kubectl(oldKc, ['get', 'nodes']);
    assert.equal(k0.status, 0, `kubectl with the admin kubeconfig before the rotation: ${k0.stderr}`);

    // ---- start: a new generation on the token, both trusted ----
    const started = tpj(['clusters', 'update', CLUSTER, '--start-credential-rotation']);
    assert.equal(started.status, 'RECONCILING');
    assert.deepEqual([started.rotation?.phase, started.rotation?.from, started.rotation?.to], ['moving', 1, 2]);
    assert.deepEqual(
      rootOf(started).generations.map((g) => [g.generation, g.state, g.hasKey, g.keyLabel]),
      [
        [1, 'previous', true, g1.keyLabel],
        [2, 'active', true, g2Label],
      ],
    );

    const afterStart = tokenObjects();
    assert.deepEqual(withLabel(afterStart, g1.keyLabel), g1Objects, 'the old key is still on the token while the rotation runs');
    const g2Objects = withLabel(afterStart, g2Label);
    assert.deepEqual(kinds(g2Objects), ['Private Key Object', 'Public Key Object'], `g2 key pair made on the token:\n${describeObjects(afterStart)}`);
    const g2Id = g2Objects[0].id!;
    assert.match(g2Id, /^[0-9a-f]{32}$/);
    assert.notEqual(g2Id, g1Id);
    assert.ok(g2Objects.every((o) => o.id === g2Id));
    assert.match(g2Objects.find((o) => o.kind === 'Private Key Object')!.access ?? '', /\bsensitive\b.*never extractable/);
    assert.deepEqual(afterStart.filter((o) => o.id !== g1Id && o.id !== g2Id), others, 'start touched no other key');

    // The admin kubeconfig from before the rotation keeps working between start and complete.
    assert.equal(readFileSync(oldKc, 'utf8'), oldKcText);
    const k1 = kubectl(oldKc, ['get', 'nodes']);
    assert.equal(k1.status, 0, `kubectl with the old kubeconfig during the rotation: ${k1.stderr}`);
    // The admin moves to new credentials before completing: a user seen on the old generation lately, and not on the
    // new one since, holds completion (observed clients).
    const movedKc = join(tmp.path, 'moved.kubeconfig');
    tpj(['clusters', 'get-credentials', CLUSTER, '--kubeconfig', movedKc]);
    const kMoved = kubectl(movedKc, ['get', 'nodes']);
    assert.equal(kMoved.status, 0, `kubectl with the new kubeconfig during the rotation: ${kMoved.stderr}`);

    // ---- complete: the old generation retired, its key destroyed on the token ----
    const completed = tpj(['clusters', 'update', CLUSTER, '--complete-credential-rotation']);
    assert.equal(completed.rotation?.phase, 'done');
    assert.equal(completed.rotation?.forced, undefined, 'no node was cut off (there are none)');

    const afterComplete = tokenObjects();
    assert.deepEqual(withLabel(afterComplete, g1.keyLabel), [], `the old key's objects are gone from the token:\n${describeObjects(afterComplete)}`);
    assert.deepEqual(afterComplete.filter((o) => o.id === g1Id), [], 'no object with the old CKA_ID is left');
    assert.deepEqual(withLabel(afterComplete, g2Label), g2Objects, 'the new key is still on the token');
    assert.deepEqual(afterComplete.filter((o) => o.id !== g2Id), others, 'complete destroyed no other key');

    const described = tpj(['clusters', 'describe', CLUSTER]);
    assert.equal(described.status, 'RUNNING');
    assert.equal(described.rotation?.phase, 'done');
    const root = rootOf(described);
    assert.deepEqual(
      root.generations.map((g) => [g.generation, g.state, g.hasKey]),
      [
        [1, 'retired', false],
        [2, 'active', true],
      ],
    );
    assert.equal((root.bundle.match(/BEGIN CERTIFICATE/g) ?? []).length, 1, 'only the new generation is trusted');

    const audit = readFileSync(caPaths(dataDir).audit, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(
      audit.some((e) => e.op === 'retire-generation' && e.cluster === CLUSTER && e.authority === 'root' && e.generation === 1 && e.decision === 'allow' && e.reason === 'key destroyed'),
      'the CA audit log records the retirement',
    );

    // The old admin kubeconfig is refused now, with what to do; a fresh get-credentials works.
    const k2 = kubectl(oldKc, ['get', 'nodes']);
    assert.notEqual(k2.status, 0, 'kubectl with the old kubeconfig is refused after completion');
    assert.match(k2.stderr, /retired generation/);
    assert.match(k2.stderr, new RegExp(`trustplane clusters get-credentials ${CLUSTER}`));
    const newKc = join(tmp.path, 'new.kubeconfig');
    tpj(['clusters', 'get-credentials', CLUSTER, '--kubeconfig', newKc]);
    const k3 = kubectl(newKc, ['get', 'nodes']);
    assert.equal(k3.status, 0, `kubectl with fresh credentials after the rotation: ${k3.stderr}`);

    // The CA service ran through it all as one process on the token.
    assert.equal(cp.ca.child.exitCode, null, 'the CA service was not restarted');
  });
});
