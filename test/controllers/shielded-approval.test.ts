// The approver's shielded-node rules as a decision table: an attested CSR is approved only with its attestation record
// for exactly that node and request; a shielded node gets nothing by token or by plain renewal; a shielded pool's
// tokens are never honoured.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { CertificateSigningRequest, UserInfo } from '../../src/apiserver/index.js';
import { decideApproval, type ApprovalFacts, type ShieldedFacts } from '../../src/controllers/approver/approval.js';
import type { NodeCredential } from '../../src/controllers/node-credentials.js';
import type { AttestationRecord } from '../../src/tpm/enrollment.js';
import { EXTRA_ATTESTED_NODE, TPM_ATTESTOR_USER } from '../../src/tpm/protocol.js';
import { bootstrapUser, CLIENT_USAGES, KUBELET_CLIENT, nodeUser } from './helpers.js';

const NOW = new Date('2030-01-01T00:00:00Z');
const ATTESTOR: UserInfo = { name: TPM_ATTESTOR_USER, groups: ['system:authenticated'], extra: { [EXTRA_ATTESTED_NODE]: ['n1'] } };

const record = (o: Partial<AttestationRecord> = {}): AttestationRecord => ({
  csrName: 'csr-1',
  nodeName: 'n1',
  pool: 'secure',
  requestDigest: 'd1',
  ekFingerprint: 'ee'.repeat(32),
  akName: '000b' + 'aa'.repeat(32),
  pcrs: [0, 1, 2, 3, 7],
  pcrDigest: 'bb'.repeat(32),
  nonce: 'cc'.repeat(32),
  attestedAt: NOW.toISOString(),
  ...o,
});

const revoked = (at: string): NodeCredential => ({
  node: 'n1',
  serial: '0a',
  notAfter: '2031-01-01T00:00:00Z',
  generation: 1,
  issuedAt: '2029-01-02T00:00:00Z',
  csr: 'csr-0',
  revokedAt: at,
});

function facts(user: UserInfo, shielded: Partial<ShieldedFacts>, subjectNode = 'n1'): ApprovalFacts {
  return {
    csr: {
      metadata: { name: 'csr-1' },
      spec: { request: 'unused', signerName: KUBELET_CLIENT, usages: CLIENT_USAGES, username: user.name, groups: user.groups, ...(user.extra ? { extra: user.extra } : {}) },
      status: {},
    } as CertificateSigningRequest,
    request: { subject: [{ type: 'O', value: 'system:nodes' }, { type: 'CN', value: `system:node:${subjectNode}` }], sans: { dns: [], ip: [], uri: [], email: [] } },
    credential: null,
    node: null,
    otherGrants: [],
    now: NOW,
    shielded: { enrolledPool: 'secure', tokenShieldedPool: null, attestation: null, requestDigest: 'd1', ...shielded },
  };
}

describe('approver: shielded nodes', () => {
  test('an attested CSR with its record is approved, the evidence in the message', () => {
    const v = decideApproval(facts(ATTESTOR, { attestation: record() }));
    assert.equal(v.verdict, 'approve');
    assert.equal(v.verdict === 'approve' && v.rule, 'attested');
    assert.match(v.message, new RegExp(`TPM attestation of node n1: EK sha256:${'ee'.repeat(32)}, AK name 000b${'aa'.repeat(32)}, PCRs 0,1,2,3,7 digest ${'bb'.repeat(32)}, nonce ${'cc'.repeat(32)}`));
  });

  const pendingCases: Array<[string, ApprovalFacts, RegExp]> = [
    ['no attestation record', facts(ATTESTOR, { attestation: null }), /no TPM attestation record exists/],
    ['a record for another node', facts(ATTESTOR, { attestation: record({ nodeName: 'n2' }) }), /was for node "n2", not "n1"/],
    ['the attestor naming another node in the subject', facts(ATTESTOR, { attestation: record() }, 'n2'), /was for node "n1", not "n2"/],
    ['a record of another request', facts(ATTESTOR, { attestation: record({ requestDigest: 'other' }) }), /not the one the TPM attestation was made for/],
    ['a node no longer enrolled', facts(ATTESTOR, { attestation: record(), enrolledPool: null }), /has no enrolled TPM/],
    ['a bootstrap token for an enrolled node', facts(bootstrapUser('abcdef', { pool: 'default-pool' }), {}), /is a shielded node \(pool secure\): it joins by TPM attestation only, never with a bootstrap token/],
    ['a renewal with the node\'s certificate', facts(nodeUser('n1'), {}), /every client certificate it gets repeats the TPM attestation/],
    [
      'an attested CSR of a node revoked after its enrollment',
      { ...facts(ATTESTOR, { attestation: record(), enrolledAt: '2029-01-01T00:00:00Z' }), credential: revoked('2029-06-01T00:00:00Z') },
      /were revoked at 2029-06-01T00:00:00Z; its TPM must be enrolled again after that/,
    ],
    ['a token of a shielded pool for a node not enrolled', facts(bootstrapUser('abcdef', { pool: 'secure' }), { enrolledPool: null, tokenShieldedPool: 'secure' }), /node pool secure, a shielded pool whose nodes join by TPM attestation only/],
  ];
  for (const [what, f, re] of pendingCases) {
    test(`left pending: ${what}`, () => {
      const v = decideApproval(f);
      assert.equal(v.verdict, 'pending', v.message);
      assert.match(v.message, re);
    });
  }

  test('an enrollment made after the revocation lets the node in again', () => {
    const f = { ...facts(ATTESTOR, { attestation: record(), enrolledAt: '2029-07-01T00:00:00Z' }), credential: revoked('2029-06-01T00:00:00Z') };
    assert.equal(decideApproval(f).verdict, 'approve');
  });

  test('a node that is not shielded renews as before', () => {
    assert.equal(decideApproval(facts(nodeUser('n1'), { enrolledPool: null })).verdict, 'approve');
  });
});
