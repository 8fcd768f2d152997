// One node-identity rule, one table: the same cases run against every place that decides whether something is a node —
// the rule itself, authentication, the node authorizer, CSR admission, the approver, the signer's record, the CA's
// profile, the tunnel server and the node agent.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { IncomingMessage } from 'node:http';
import { Authenticator } from '../../src/apiserver/auth/authenticate.js';
import { csrCreateRefusal, nodeNameOf as authorizerNodeOf } from '../../src/apiserver/auth/authorize.js';
import type { CertificateSigningRequest, UserInfo } from '../../src/apiserver/index.js';
import { decide } from '../../src/ca/profiles.js';
import { subjectNode } from '../../src/controllers/index.js';
import { checkNodeName } from '../../src/node/agent.js';
import { buildCertificate, generateKeyPair, nodeOfSubject, pemEncode, selfSignedCa, SIGNER_KUBELET_CLIENT, type Name, type ParsedCsr } from '../../src/pki/index.js';
import type { Store } from '../../src/store/client.js';
import { parsedCsrOf } from './helpers.js';
import { nodeNameOf as tunnelNodeOf } from '../../src/tunnel/identity.js';

interface Case {
  what: string;
  subject: Name;
  /** The node it names, or null when it is no node's. */
  node: string | null;
  /** What is wrong lies in an attribute a user (name and groups) does not carry: authentication refuses it first. */
  subjectOnly?: true;
}

const cn = (v: string) => ({ type: 'CN', value: v });
const o = (v: string) => ({ type: 'O', value: v });
const LONGEST = `${'a'.repeat(61)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}`; // 253 characters

const CASES: Case[] = [
  { what: 'a plain name', subject: [o('system:nodes'), cn('system:node:n1')], node: 'n1' },
  { what: 'a dotted DNS subdomain with dashes', subject: [o('system:nodes'), cn('system:node:node-1.pool-a.example.com')], node: 'node-1.pool-a.example.com' },
  { what: 'a name of 253 characters', subject: [o('system:nodes'), cn(`system:node:${LONGEST}`)], node: LONGEST },
  { what: 'upper case', subject: [o('system:nodes'), cn('system:node:N1')], node: null },
  { what: 'a trailing dot', subject: [o('system:nodes'), cn('system:node:n1.')], node: null },
  { what: 'a leading dash', subject: [o('system:nodes'), cn('system:node:-n1')], node: null },
  { what: 'an underscore', subject: [o('system:nodes'), cn('system:node:n_1')], node: null },
  { what: 'a name of 254 characters', subject: [o('system:nodes'), cn(`system:node:${LONGEST}x`)], node: null },
  { what: 'an empty name', subject: [o('system:nodes'), cn('system:node:')], node: null },
  { what: 'no node prefix', subject: [o('system:nodes'), cn('n1')], node: null },
  { what: 'a CN with NUL', subject: [o('system:nodes'), cn('system:node:n1\u0000evil')], node: null },
  { what: 'a CN with a newline', subject: [o('system:nodes'), cn('system:node:n1\nevil')], node: null },
  { what: 'an O holding system:nodes as a substring', subject: [o('system:nodes-evil'), cn('system:node:n1')], node: null },
  { what: 'an O ending in system:nodes', subject: [o('not-system:nodes'), cn('system:node:n1')], node: null },
  { what: 'two O values, one of them system:nodes', subject: [o('system:nodes'), o('system:masters'), cn('system:node:n1')], node: null },
  { what: 'two O values, both system:nodes', subject: [o('system:nodes'), o('system:nodes'), cn('system:node:n1')], node: null },
  { what: 'no O', subject: [cn('system:node:n1')], node: null },
  { what: 'another attribute beside CN and O', subject: [o('system:nodes'), { type: 'OU', value: 'x' }, cn('system:node:n1')], node: null, subjectOnly: true },
  { what: 'two CNs', subject: [o('system:nodes'), cn('system:node:n1'), cn('system:node:n2')], node: null },
];

const csrOf = (subject: Name): ParsedCsr => parsedCsrOf(subject);

/** The user a certificate with this subject would be: CN as name, each O a group (as authentication builds it). */
const userOf = (subject: Name): UserInfo => {
  const cns = subject.filter((a) => a.type === 'CN');
  return { name: cns.length === 1 ? cns[0].value : '', groups: [...subject.filter((a) => a.type === 'O').map((a) => a.value), 'system:authenticated'] };
};

/** The subject as node:tls reports it on a peer certificate: one value or an array per attribute type. */
const peerSubjectOf = (subject: Name) => {
  const out: Record<string, string | string[]> = {};
  for (const a of subject) {
    const prev = out[a.type];
    out[a.type] = prev === undefined ? a.value : Array.isArray(prev) ? [...prev, a.value] : [prev, a.value];
  }
  return out;
};

/** Every entry point, as "which node does this case name" (null: none). */
const ENTRY_POINTS: Record<string, (c: Case) => string | null | Promise<string | null>> = {
  'pki nodeOfSubject': (c) => {
    const n = nodeOfSubject(c.subject);
    return 'node' in n ? n.node : null;
  },
  'approver and signer (subjectNode)': (c) => {
    const n = subjectNode({ subject: c.subject });
    return 'node' in n ? n.node : null;
  },
  'CA kubelet client profile': (c) => {
    const d = decide({ role: 'fleet', name: 'fleet:admin' }, 'a', { signer: SIGNER_KUBELET_CLIENT, csr: csrOf(c.subject) }, new Date('2030-01-01T00:00:00Z'), new Date('2026-01-01T00:00:00Z'));
    const n = nodeOfSubject(c.subject);
    return d.allow ? ('node' in n ? n.node : 'allowed-without-node') : null;
  },
  'tunnel server (nodeNameOf peer)': (c) => tunnelNodeOf({ subject: peerSubjectOf(c.subject) as never }),
  'node authorizer (nodeNameOf user)': (c) => authorizerNodeOf(userOf(c.subject)) ?? null,
  'CSR admission for the node itself': (c) => {
    const n = nodeOfSubject(c.subject);
    // A node user (as the one rule makes it) asking for a client certificate with this subject.
    const cnValue = c.subject.find((a) => a.type === 'CN')?.value ?? '';
    const user: UserInfo = { name: cnValue, groups: ['system:nodes', 'system:authenticated'] };
    const csr = { spec: { signerName: SIGNER_KUBELET_CLIENT } } as CertificateSigningRequest;
    return csrCreateRefusal(user, csr, csrOf(c.subject)) === undefined ? ('node' in n ? n.node : 'admitted-without-node') : null;
  },
  'CSR admission for a bootstrap token': (c) => {
    const n = nodeOfSubject(c.subject);
    const token: UserInfo = { name: 'system:bootstrap:abcdef', groups: ['system:bootstrappers', 'system:authenticated'] };
    const csr = { spec: { signerName: SIGNER_KUBELET_CLIENT } } as CertificateSigningRequest;
    return csrCreateRefusal(token, csr, csrOf(c.subject)) === undefined ? ('node' in n ? n.node : 'admitted-without-node') : null;
  },
  'node agent (checkNodeName)': (c) => {
    // The agent is given a name, not a subject: the name the case's CN holds, when the subject is otherwise a node's.
    const n = nodeOfSubject(c.subject);
    const cnValue = c.subject.find((a) => a.type === 'CN')?.value ?? '';
    if (!cnValue.startsWith('system:node:')) return null;
    const name = cnValue.slice('system:node:'.length);
    try {
      checkNodeName(name);
    } catch {
      return null;
    }
    // Subject-only problems (O, extra attributes) are not the agent's input: its own name passes, the rule says which.
    return 'node' in n ? n.node : null;
  },
};

describe('one node-identity rule, every entry point', () => {
  for (const [entry, fn] of Object.entries(ENTRY_POINTS)) {
    test(entry, async () => {
      for (const c of CASES) {
        // The agent sees only names: cases that differ from a good one only in the subject are checked by the others.
        if (entry === 'node agent (checkNodeName)' && c.node === null && isNameOnlyGood(c)) continue;
        if (entry === 'node authorizer (nodeNameOf user)' && c.subjectOnly) continue;
        assert.equal(await fn(c), c.node, `${entry}: ${c.what}`);
      }
    });
  }

  test('authentication: a client certificate with each subject', async () => {
    const caKey = await generateKeyPair({ kind: 'ec', curve: 'P-256' });
    const caSubject = [cn('node identity test CA')];
    const notBefore = new Date(Date.now() - 60_000);
    const notAfter = new Date(Date.now() + 3600_000);
    const caDer = await selfSignedCa({ subject: caSubject, notBefore, notAfter, signer: caKey.signer });
    const auth = new Authenticator(pemEncode('CERTIFICATE', caDer), {} as Store, { now: () => new Date() } as never);
    try {
      for (const c of CASES) {
        const leafKey = await generateKeyPair({ kind: 'ec', curve: 'P-256' });
        let raw: Buffer;
        try {
          raw = await buildCertificate(
            { subject: c.subject, notBefore, notAfter, publicKey: leafKey.signer.publicKey, isCA: false, keyUsage: ['digitalSignature'], extKeyUsage: ['clientAuth'] },
            { subject: caSubject, publicKey: caKey.signer.publicKey, signer: caKey.signer },
          );
        } catch {
          // Not even encodable as a certificate: nobody can present it.
          assert.equal(c.node, null, `authentication: ${c.what} could not be built`);
          continue;
        }
        const socket = { getPeerCertificate: () => ({ raw }), remoteAddress: '127.0.0.1' };
        const req = { socket, headers: {} } as unknown as IncomingMessage;
        const who = await auth.authenticate(req);
        const node = who && who.user.groups.includes('system:nodes') ? authorizerNodeOf(who.user) ?? `not-a-node:${who.user.name}` : null;
        assert.equal(node, c.node, `authentication: ${c.what}`);
        if (c.node) assert.deepEqual(who!.user.extra?.['trustplane.io/source-address'], ['127.0.0.1'], 'a node user carries the address it was seen at');
      }
    } finally {
      auth.close();
    }
  });
});

/** A case whose name part is a good node name (its problem is in the subject around it). */
function isNameOnlyGood(c: Case): boolean {
  const cns = c.subject.filter((a) => a.type === 'CN');
  if (cns.length !== 1 || !cns[0].value.startsWith('system:node:')) return false;
  return 'node' in nodeOfSubject([o('system:nodes'), cns[0]]);
}
