// The approver, CSR cleaner and bootstrap token cleaner loops on a real store, time from a ManualClock.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  createBootstrapToken,
  CsrRegistry,
  getBootstrapToken,
  isApproved,
  listBootstrapTokens,
  NodeRegistry,
  type CertificateSigningRequest,
} from '../../src/apiserver/index.js';
import {
  APPROVAL_NOTE_ANNOTATION,
  BootstrapTokenCleaner,
  CsrApprover,
  CsrCleaner,
  putNodeCredential,
  type ApprovalVerdict,
} from '../../src/controllers/index.js';
import { createNodePool, updateNodePool } from '../../src/fleet/node-pools.js';
import { buildCertificate, generateKeyPair, pemEncode } from '../../src/pki/index.js';
import { ManualClock } from '../../src/util/clock.js';
import { createLogger, silentLogger } from '../../src/util/log.js';
import { waitFor } from '../../src/util/wait.js';
import { startTestCluster, type TestCluster } from '../apiserver/harness.js';
import { ADMIN, bootstrapUser, csrManifest, KUBELET_SERVING, nodeCsr, nodeUser } from './helpers.js';

const H = 3600_000;
/** TP_TEST_LOG=1 shows the loops' logs on standard error. */
const log = process.env.TP_TEST_LOG ? createLogger('controllers-test') : silentLogger;

describe('approver loop', () => {
  let c: TestCluster;
  let csrs: CsrRegistry;
  let nodes: NodeRegistry;
  const clock = new ManualClock(Date.parse('2030-01-01T00:00:00Z'));
  /** Every verdict on each CSR, in order (a request is looked at again after each change, e.g. 'ignore' once decided). */
  const verdicts = new Map<string, ApprovalVerdict[]>();
  let approver: CsrApprover | undefined;

  before(async () => {
    c = await startTestCluster({ clock });
    csrs = new CsrRegistry(c.store, clock);
    nodes = new NodeRegistry(c.store, clock);
  });
  after(async () => {
    await approver?.stop();
    await c?.stop();
  });

  // Each test starts the approver if no earlier one did, so that each passes alone (--test-name-pattern).
  const start = () => {
    if (approver) return approver;
    approver = new CsrApprover({ csrs, nodes, store: c.store, clock, log, resyncMs: 600_000, retryBaseMs: 20, retryMaxMs: 200, onVerdict: (n, v) => verdicts.set(n, [...(verdicts.get(n) ?? []), v]) });
    approver.start();
    return approver;
  };
  const verdictOf = (name: string) => waitFor(`a verdict on ${name}`, () => verdicts.get(name)?.[0]);
  const approvedEventually = (name: string) =>
    waitFor(`${name} to be approved`, async () => ((await csrs.get(name)).status?.conditions?.some((k) => k.type === 'Approved' && k.reason === 'AutoApproved') ? true : undefined));
  const noted = (name: string, note: RegExp) =>
    waitFor(`a note on ${name}`, async () => {
      const x = await csrs.get(name);
      return note.test(x.metadata.annotations?.[APPROVAL_NOTE_ANNOTATION] ?? '') ? x : undefined;
    });

  test('two bootstrap requests for one fresh node, seen together: exactly one is approved', async () => {
    for (const name of ['twin-a', 'twin-b']) await csrs.create(csrManifest(name, (await nodeCsr('twin')).pem), bootstrapUser('abcdef'));
    start();
    const [a, b] = [await verdictOf('twin-a'), await verdictOf('twin-b')];
    assert.deepEqual([a.verdict, b.verdict].sort(), ['approve', 'pending']);
    const loser = a.verdict === 'pending' ? 'twin-a' : 'twin-b';
    const winner = loser === 'twin-a' ? 'twin-b' : 'twin-a';
    assert.ok(isApproved(await csrs.get(winner)));
    const l = await csrs.get(loser);
    assert.equal(isApproved(l), false);
    assert.match(l.metadata.annotations![APPROVAL_NOTE_ANNOTATION], new RegExp(`another request for node "twin" \\(${winner}\\) is already approved`));
  });

  test('a pending request is approved once what held it back goes away (the approved twin is deleted before issuance)', async () => {
    // Two requests for node "pair" of its own: one approved, the other held back by it.
    for (const name of ['pair-a', 'pair-b']) await csrs.create(csrManifest(name, (await nodeCsr('pair')).pem), bootstrapUser('abcdef'));
    start();
    const [a, b] = [await verdictOf('pair-a'), await verdictOf('pair-b')];
    assert.deepEqual([a.verdict, b.verdict].sort(), ['approve', 'pending']);
    const winner = a.verdict === 'approve' ? 'pair-a' : 'pair-b';
    const loser = winner === 'pair-a' ? 'pair-b' : 'pair-a';
    assert.equal(isApproved(await csrs.get(loser)), false);
    // No certificate was issued and no credential recorded; with the approved twin gone, nothing holds node "pair".
    await csrs.delete(winner);
    await approvedEventually(loser);
  });

  test('a bootstrap request for a node whose recorded credential is live stays pending until that credential expires', async () => {
    start();
    const now = clock.now();
    await putNodeCredential(c.store, { node: 'held', serial: '01', notAfter: new Date(now.getTime() + H).toISOString(), generation: 1, issuedAt: now.toISOString(), csr: 'earlier' });
    await csrs.create(csrManifest('held-1', (await nodeCsr('held')).pem), bootstrapUser('abcdef'));
    const held = await noted('held-1', /already holds a live client credential/);
    assert.equal(isApproved(held), false);
    // Past the expiry, a resync looks again (nothing about the CSR changed; the periodic timer calls the same resync()).
    clock.advance(H + 1000);
    approver!.resync();
    await approvedEventually('held-1');
  });

  test('a serving request is not approved by what the Node reports, only once its pool allows the address', async () => {
    start();
    // The node joined through pool "srv-pool" and was seen at 10.1.0.1 (its credential record says so).
    const now = clock.now();
    await putNodeCredential(c.store, { node: 'srv', serial: '02', notAfter: new Date(now.getTime() + 24 * H).toISOString(), generation: 1, issuedAt: now.toISOString(), csr: 'join', pool: 'srv-pool', address: '10.1.0.1' });
    await createNodePool(c.store, 'c', 'srv-pool', clock);
    await nodes.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'srv' }, status: { addresses: [{ type: 'InternalIP', address: '10.1.0.1' }, { type: 'ExternalIP', address: '10.1.0.2' }] } });
    await csrs.create(csrManifest('srv-1', (await nodeCsr('srv', { sans: { ip: ['10.1.0.1', '10.1.0.2'] } })).pem, { signerName: KUBELET_SERVING }), nodeUser('srv'));
    const held = await noted('srv-1', /IP 10\.1\.0\.2 is not known to the control plane as node "srv"'s: .*seen connecting from \(10\.1\.0\.1\).*\(node pool srv-pool\)/);
    assert.equal(isApproved(held), false);
    // The administrator lets the pool's nodes use 10.1.0.0/24; the next resync approves.
    await updateNodePool(c.store, 'c', 'srv-pool', { allowedCidrs: ['10.1.0.0/24'] });
    approver!.resync();
    await approvedEventually('srv-1');
    const cond = (await csrs.get('srv-1')).status!.conditions!.find((x) => x.type === 'Approved')!;
    assert.equal(cond.reason, 'AutoApproved');
    assert.match(cond.message!, /serving certificate of node srv for its own addresses IP 10\.1\.0\.1, IP 10\.1\.0\.2/);
  });

  test('requests for other signers get no verdict and no note', async () => {
    start();
    await csrs.create(csrManifest('user-1', (await nodeCsr('u', { subject: [{ type: 'CN', value: 'alice' }] })).pem, { signerName: 'kubernetes.io/kube-apiserver-client' }), ADMIN);
    // A later kubelet request as a barrier: once it has a verdict, user-1's event has been handled (one at a time, in order).
    await csrs.create(csrManifest('barrier-1', (await nodeCsr('barrier')).pem), nodeUser('barrier'));
    await verdictOf('barrier-1');
    assert.equal(verdicts.has('user-1'), false);
    const u = await csrs.get('user-1');
    assert.equal(u.metadata.annotations, undefined);
    assert.equal(u.status?.conditions, undefined);
  });
});

/** A real self-signed certificate valid for `lifetimeMs` from `from`, as PEM. */
async function certificatePem(from: Date, lifetimeMs: number): Promise<string> {
  const kp = await generateKeyPair({ kind: 'ec', curve: 'P-256' });
  const subject = [{ type: 'CN', value: 'system:node:x' }];
  const der = await buildCertificate(
    { subject, notBefore: from, notAfter: new Date(from.getTime() + lifetimeMs), publicKey: kp.signer.publicKey, isCA: false, keyUsage: ['digitalSignature'], extKeyUsage: ['clientAuth'] },
    { subject, publicKey: kp.signer.publicKey, signer: kp.signer },
  );
  return pemEncode('CERTIFICATE', der);
}

describe('CSR cleaner and bootstrap token cleaner loops', () => {
  let c: TestCluster;
  let csrs: CsrRegistry;
  const clock = new ManualClock(Date.parse('2030-06-01T00:00:00Z'));
  let cleaner: CsrCleaner;
  let tokenCleaner: BootstrapTokenCleaner;
  // Started by the first test that needs the loop running, whichever runs (each passes alone).
  let cleanerRunning = false;
  const runCleaner = () => {
    if (!cleanerRunning) cleaner.start();
    cleanerRunning = true;
  };

  before(async () => {
    c = await startTestCluster({ clock });
    csrs = new CsrRegistry(c.store, clock);
    cleaner = new CsrCleaner({ csrs, clock, log, intervalMs: 25 });
    tokenCleaner = new BootstrapTokenCleaner({ store: c.store, clock, log, intervalMs: 25 });
  });
  after(async () => {
    await cleaner?.stop();
    await tokenCleaner?.stop();
    await c?.stop();
  });

  const names = async () => (await csrs.list()).items.map((x: CertificateSigningRequest) => x.metadata.name).sort();
  const gone = (name: string) => waitFor(`${name} to be deleted`, async () => !(await names()).includes(name));

  test('CSRs are deleted after the Kubernetes periods: decided ones 1 hour after the decision, pending ones after 24 hours', async () => {
    const make = async (name: string) => csrs.create(csrManifest(name, (await nodeCsr(name)).pem), bootstrapUser('abcdef'));
    await make('pending');
    await make('denied');
    await csrs.decide('denied', 'Denied', 'Test', 'no');
    await make('failed');
    await csrs.decide('failed', 'Approved', 'Test', 'yes');
    await csrs.fail('failed', 'SignerValidationFailure', 'no');
    await make('issued');
    await csrs.decide('issued', 'Approved', 'Test', 'yes');
    await csrs.setCertificate('issued', await certificatePem(clock.now(), 365 * 24 * H));
    await make('stuck');
    await csrs.decide('stuck', 'Approved', 'Test', 'yes');

    clock.advance(H);
    assert.deepEqual(await cleaner.pass(), [], 'nothing is older than 1 hour yet');
    runCleaner();
    clock.advance(1000);
    for (const n of ['denied', 'failed', 'issued']) await gone(n);
    assert.deepEqual(await names(), ['pending', 'stuck']);

    clock.advance(23 * H - 2000);
    assert.deepEqual(await cleaner.pass(), [], 'pending and approved-but-unissued requests are kept for 24 hours');
    clock.advance(2000);
    await gone('pending');
    await gone('stuck');
  });

  test('an issued CSR whose certificate expired is deleted even if the approval is recent', async () => {
    await csrs.create(csrManifest('short', (await nodeCsr('short')).pem), bootstrapUser('abcdef'));
    await csrs.decide('short', 'Approved', 'Test', 'yes');
    await csrs.setCertificate('short', await certificatePem(new Date(clock.now().getTime() - 10 * 60_000), 20 * 60_000));
    assert.deepEqual(await cleaner.pass(), []);
    runCleaner();
    clock.advance(10 * 60_000 + 1000);
    await gone('short');
  });

  test('expired bootstrap tokens are deleted; live ones stay', async () => {
    const short = await createBootstrapToken(c.store, { pool: 'default', ttlSeconds: 600 }, clock);
    const long = await createBootstrapToken(c.store, { pool: 'default', ttlSeconds: 7200 }, clock);
    assert.deepEqual(await tokenCleaner.pass(), []);
    tokenCleaner.start();
    clock.advance(600_000);
    await waitFor('the short-lived token to be deleted', async () => (await getBootstrapToken(c.store, short.id)) === null);
    assert.ok(await getBootstrapToken(c.store, long.id));
    assert.deepEqual(await tokenCleaner.pass(), []);
    clock.advance(6600_000);
    await waitFor('the long-lived token to be deleted', async () => (await listBootstrapTokens(c.store)).length === 0);
  });
});
