// The other pure decisions: what the signer does with a CSR and a CA error, how long the cleaner keeps a CSR, which
// bootstrap tokens have expired, and how node credential records merge.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { BootstrapTokenInfo, CertificateSigningRequest, CsrCondition } from '../../src/apiserver/index.js';
import {
  chainPem,
  classifyCaError,
  credentialEntries,
  expiredTokens,
  liveCredential,
  mergeCredential,
  retentionVerdict,
  signInputOf,
  signingAction,
  SIGNING_NOTE_ANNOTATION,
  unservedSignerNote,
  type NodeCredential,
  type NodeCredentialEntry,
} from '../../src/controllers/index.js';
import { joinFactsOf } from '../../src/controllers/signer/signer.js';
import { TrustplaneError } from '../../src/util/errors.js';
import { buildCertificate, generateKeyPair, pemEncode } from '../../src/pki/index.js';
import { APISERVER_CLIENT, KUBELET_CLIENT, KUBELET_SERVING } from './helpers.js';

const T0 = Date.parse('2030-01-01T00:00:00Z');
const at = (ms: number) => new Date(T0 + ms);
const iso = (ms: number) => at(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
const H = 3600_000;

function csr(o: { signer?: string; conditions?: Array<Partial<CsrCondition> & { type: string }>; certificate?: string; created?: number; expirationSeconds?: number; username?: string } = {}): CertificateSigningRequest {
  return {
    apiVersion: 'certificates.k8s.io/v1',
    kind: 'CertificateSigningRequest',
    metadata: { name: 'x', creationTimestamp: iso(o.created ?? 0) },
    spec: {
      request: Buffer.from('-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n').toString('base64'),
      signerName: o.signer ?? KUBELET_CLIENT,
      usages: ['digital signature', 'client auth'],
      ...(o.expirationSeconds ? { expirationSeconds: o.expirationSeconds } : {}),
      ...(o.username ? { username: o.username } : {}),
    },
    status: {
      ...(o.conditions ? { conditions: o.conditions.map((c) => ({ status: 'True' as const, ...c })) } : {}),
      ...(o.certificate ? { certificate: o.certificate } : {}),
    },
  };
}

/** A real certificate (self-signed, not a CA) valid [notBefore, notAfter], base64 PEM as in status.certificate. */
async function certificateB64(notBefore: Date, notAfter: Date): Promise<string> {
  const kp = await generateKeyPair({ kind: 'ec', curve: 'P-256' });
  const subject = [{ type: 'CN', value: 'system:node:n1' }];
  const der = await buildCertificate(
    { subject, notBefore, notAfter, publicKey: kp.signer.publicKey, isCA: false, keyUsage: ['digitalSignature'], extKeyUsage: ['clientAuth'] },
    { subject, publicKey: kp.signer.publicKey, signer: kp.signer },
  );
  return Buffer.from(pemEncode('CERTIFICATE', der)).toString('base64');
}

describe('signer decisions', () => {
  test('only approved, undecided-otherwise CSRs for the CA signers are signed', () => {
    const approved = [{ type: 'Approved' }];
    for (const signer of [KUBELET_CLIENT, KUBELET_SERVING, APISERVER_CLIENT]) assert.deepEqual(signingAction(csr({ signer, conditions: approved })), { action: 'sign' });
    assert.equal(signingAction(csr({ signer: 'example.com/other' })).action, 'skip');
    assert.equal(signingAction(csr({ signer: 'example.com/other', conditions: [{ type: 'Approved' }, { type: 'Denied' }] })).action, 'skip');
    assert.equal(signingAction(csr({})).action, 'skip');
    assert.equal(signingAction(csr({ conditions: [{ type: 'Denied' }] })).action, 'skip');
    assert.equal(signingAction(csr({ conditions: [{ type: 'Approved' }, { type: 'Failed' }] })).action, 'skip');
  });
  test('an approved CSR for a signer nobody here serves gets a note saying so, once; issued or failed ones do not', () => {
    const approved = [{ type: 'Approved' }];
    for (const signer of ['example.com/other', 'trustplane.io/etcd-server']) {
      const a = signingAction(csr({ signer, conditions: approved }));
      assert.equal(a.action, 'note', signer);
      if (a.action !== 'note') continue;
      assert.equal(a.message, unservedSignerNote(signer));
      assert.match(a.message, new RegExp(`^no signer in this cluster serves signer "${signer.replace(/[./]/g, '\\$&')}" \\(it serves ${KUBELET_CLIENT.replace(/[./]/g, '\\$&')}`));
      // Once the note is on the CSR, nothing more is to be done.
      const noted = csr({ signer, conditions: approved });
      noted.metadata.annotations = { [SIGNING_NOTE_ANNOTATION]: a.message };
      assert.equal(signingAction(noted).action, 'skip');
    }
    assert.equal(signingAction(csr({ signer: 'example.com/other', conditions: [{ type: 'Approved' }, { type: 'Failed' }] })).action, 'skip');
    assert.equal(signingAction(csr({ signer: 'example.com/other', conditions: approved, certificate: 'QUJD' })).action, 'skip');
    assert.match(unservedSignerNote(''), /^no signer in this cluster serves an empty signer name \(/);
  });
  test('an issued kubelet client CSR is to be recorded; other issued CSRs are done', () => {
    const issued = { conditions: [{ type: 'Approved' }], certificate: 'QUJD' };
    assert.deepEqual(signingAction(csr({ ...issued, signer: KUBELET_CLIENT })), { action: 'record' });
    assert.equal(signingAction(csr({ ...issued, signer: KUBELET_SERVING })).action, 'skip');
  });
  test('the CA is asked for the PEM, the lifetime asked for, on behalf of the requester', () => {
    const input = signInputOf(csr({ expirationSeconds: 3600, username: 'system:bootstrap:abcdef' }));
    assert.equal(input.signer, KUBELET_CLIENT);
    assert.match(input.csr as string, /^-----BEGIN CERTIFICATE REQUEST-----/);
    assert.equal(input.expirationSeconds, 3600);
    assert.equal(input.onBehalfOf, 'system:bootstrap:abcdef');
    assert.equal('expirationSeconds' in signInputOf(csr({})), false);
    // The usages asked for go to the CA, which issues exactly those or refuses naming the one it will not.
    assert.deepEqual(input.usages, ['digital signature', 'client auth']);
  });
  test('the chain written is the leaf then the intermediates, each PEM block on its own lines', () => {
    assert.equal(chainPem({ certificate: 'LEAF', chain: ['CROSS\n'] }), 'LEAF\nCROSS\n');
    assert.equal(chainPem({ certificate: 'LEAF\n', chain: [] }), 'LEAF\n');
  });
  test('CA refusals fail the CSR with the CA message; everything else is retried', () => {
    for (const reason of ['Forbidden', 'Invalid', 'BadRequest'] as const) {
      assert.deepEqual(classifyCaError(new TrustplaneError(reason, 'no: because')), { outcome: 'fail', reason: 'SignerValidationFailure', message: 'no: because' });
    }
    for (const reason of ['Unavailable', 'Timeout', 'Internal', 'Conflict', 'NotFound', 'Unauthorized'] as const) {
      assert.equal(classifyCaError(new TrustplaneError(reason, 'later')).outcome, 'retry', reason);
    }
    assert.equal(classifyCaError(new Error('ECONNREFUSED')).outcome, 'retry');
  });
});

describe('cleaner retention (Kubernetes csrcleaner periods)', () => {
  const cond = (type: string, ms: number) => ({ type, lastUpdateTime: iso(ms) });
  test('pending: kept 24 hours after creation', () => {
    assert.equal(retentionVerdict(csr({}), at(24 * H)).delete, false);
    assert.deepEqual(retentionVerdict(csr({}), at(24 * H + 1000)), { delete: true, why: 'pending for more than 24 hours' });
  });
  test('denied and failed: kept 1 hour after the condition', () => {
    assert.equal(retentionVerdict(csr({ conditions: [cond('Denied', 5 * H)] }), at(6 * H)).delete, false);
    assert.equal(retentionVerdict(csr({ conditions: [cond('Denied', 5 * H)] }), at(6 * H + 1000)).delete, true);
    const failed = csr({ conditions: [cond('Approved', 0), cond('Failed', 2 * H)] });
    assert.equal(retentionVerdict(failed, at(3 * H)).delete, false);
    assert.deepEqual(retentionVerdict(failed, at(3 * H + 1000)), { delete: true, why: 'failed more than 1 hour ago' });
  });
  test('issued: kept 1 hour after approval, or until the certificate expires if that is sooner', async () => {
    const cert = await certificateB64(at(0), at(90 * 60_000));
    const issued = csr({ conditions: [cond('Approved', 0)], certificate: cert });
    assert.equal(retentionVerdict(issued, at(H)).delete, false);
    assert.deepEqual(retentionVerdict(issued, at(H + 1000)), { delete: true, why: 'issued more than 1 hour ago' });
    const short = csr({ conditions: [cond('Approved', 0)], certificate: await certificateB64(at(0), at(10 * 60_000)) });
    assert.equal(retentionVerdict(short, at(10 * 60_000)).delete, false);
    assert.deepEqual(retentionVerdict(short, at(10 * 60_000 + 1000)), { delete: true, why: 'its certificate has expired' });
  });
  test('approved but never issued: kept 24 hours after creation (Kubernetes keeps it forever)', () => {
    const stuck = csr({ conditions: [cond('Approved', 0)] });
    assert.equal(retentionVerdict(stuck, at(23 * H)).delete, false);
    assert.deepEqual(retentionVerdict(stuck, at(24 * H + 1000)), { delete: true, why: 'approved more than 24 hours ago but never issued' });
  });
  test('a condition without lastUpdateTime counts from creation', () => {
    const denied = csr({ created: 0, conditions: [{ type: 'Denied' }] });
    assert.equal(retentionVerdict(denied, at(H)).delete, false);
    assert.equal(retentionVerdict(denied, at(H + 1000)).delete, true);
  });
});

test('token cleaner: tokens expire at their expiresAt', () => {
  const tok = (id: string, ms: number) => ({ id, expiresAt: at(ms) }) as Pick<BootstrapTokenInfo, 'id' | 'expiresAt'>;
  const tokens = [tok('aaaaaa', -1), tok('bbbbbb', 0), tok('cccccc', 1)];
  assert.deepEqual(expiredTokens(tokens, at(0)).map((t) => t.id), ['aaaaaa', 'bbbbbb']);
  assert.deepEqual(expiredTokens(tokens, at(-10)), []);
});

describe('node credential records', () => {
  const entry = (serial: string, issued: number, notAfter: number, o: Partial<NodeCredentialEntry> = {}): NodeCredentialEntry => ({
    serial,
    issuedAt: at(issued).toISOString(),
    notAfter: at(notAfter).toISOString(),
    generation: 1,
    csr: `csr-${serial}`,
    ...o,
  });
  test('the pool of the join is carried on to the entries of renewals, and its address stays with its own entry', () => {
    let rec = mergeCredential(null, 'n1', entry('01', 0, 10 * H, { pool: 'edge', address: '10.0.0.5' }), at(0));
    rec = mergeCredential(rec, 'n1', entry('02', 7 * H, 17 * H, { address: '10.0.0.6' }), at(7 * H));
    // The join's entry has expired by the third; the pool still goes on.
    rec = mergeCredential(rec, 'n1', entry('03', 14 * H, 24 * H), at(14 * H));
    assert.deepEqual(credentialEntries(rec).map((e) => [e.serial, e.pool, e.address]), [['03', 'edge', undefined], ['02', 'edge', '10.0.0.6']]);
  });
  test('what the control plane saw of a kubelet CSR: the pool of its bootstrap token and the address it came from', () => {
    const c = csr({ username: 'system:bootstrap:abcdef' });
    c.spec.groups = ['system:bootstrappers', 'system:bootstrappers:edge', 'system:authenticated'];
    c.spec.extra = { 'trustplane.io/source-address': ['10.0.0.5'] };
    assert.deepEqual(joinFactsOf(c), { pool: 'edge', address: '10.0.0.5' });
    assert.deepEqual(joinFactsOf(csr({ username: 'system:node:n1' })), {});
  });
  test('the newest certificate is on top, older unexpired ones in earlier; expired ones go', () => {
    let rec = mergeCredential(null, 'n1', entry('01', 0, 10 * H), at(0));
    rec = mergeCredential(rec, 'n1', entry('02', 7 * H, 17 * H), at(7 * H));
    assert.equal(rec!.serial, '02');
    assert.deepEqual(rec!.earlier?.map((e) => e.serial), ['01']);
    rec = mergeCredential(rec, 'n1', entry('03', 14 * H, 24 * H), at(14 * H));
    assert.deepEqual(credentialEntries(rec).map((e) => e.serial), ['03', '02']);
  });
  test('a serial already known keeps what the record says of it (a revocation stays)', () => {
    const rec = mergeCredential(null, 'n1', entry('01', 0, 10 * H, { revokedAt: at(H).toISOString() }), at(0));
    const again = mergeCredential(rec, 'n1', entry('01', 0, 10 * H), at(2 * H));
    assert.equal(again!.revokedAt, at(H).toISOString());
  });
  test('nothing worth keeping: an already expired certificate', () => {
    assert.equal(mergeCredential(null, 'n1', entry('01', 0, H), at(2 * H)), null);
  });
  test('live = not expired and not revoked; the longest-lasting live one is reported', () => {
    const rec: NodeCredential = { node: 'n1', ...entry('02', 5 * H, 8 * H, { revokedAt: at(6 * H).toISOString() }), earlier: [entry('01', 0, 10 * H)] };
    assert.equal(liveCredential(rec, at(7 * H))?.serial, '01');
    assert.equal(liveCredential(rec, at(10 * H)), undefined);
    assert.equal(liveCredential(null, at(0)), undefined);
  });
});
