// Shielded nodes end to end with real processes and real software TPMs (swtpm): a node whose TPM's EK is enrolled joins
// with no token and is Ready in kubectl, its CSR carrying the attestation evidence the approver checked; re-attestation
// after a lapse; and each refusal (unenrolled TPM, another node's name, replayed quote, wrong nonce, an AK of another
// TPM, changed PCRs, renewal without attestation, bootstrap tokens) with its message and an audit line in the host log.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { CertificateSigningRequest, Node } from '../../src/apiserver/index.js';
import { ApiClient } from '../../src/node/api-client.js';
import { buildCsr, generateKeyPair, pemEncode, softSigner } from '../../src/pki/index.js';
import { TpmDriver } from '../../src/tpm/driver.js';
import { TPM_ATTESTATION_ANNOTATION, TPM_ATTESTATION_PATH, type Challenge, type ChallengeAnswer } from '../../src/tpm/protocol.js';
import { quoteQualifyingData } from '../../src/tpm/quote.js';
import { createPrivateKey } from 'node:crypto';
import { waitFor } from '../../src/util/wait.js';
import { exited, killChild, tp, tpSpawn } from '../helpers/cli.js';
import { startControlPlane, type ControlPlane } from '../helpers/control-plane.js';
import { startSwtpm, type SoftTpm } from '../helpers/swtpm.js';
import { tempDir } from '../helpers/tmp.js';

const KUBECTL = '/usr/bin/kubectl';
const TOKEN_SHAPE = /[a-z0-9]{6}\.[a-z0-9]{16}/;

describe('shielded nodes: TPM attestation instead of a bootstrap token (real processes, swtpm, kubectl)', () => {
  const tmp = tempDir('tp-e2e-shielded-');
  const dataDir = join(tmp.path, 'data');
  const kc = join(tmp.path, 'kubeconfig');
  let cp: ControlPlane;
  let tpmA: SoftTpm;
  let tpmB: SoftTpm;
  let server = '';
  let caHash = '';
  let bundle = '';
  const agents: Array<ReturnType<typeof tpSpawn>> = [];
  const moreTpms: SoftTpm[] = [];

  const tpj = (args: string[]) => {
    const r = tp([...args, '--data-dir', dataDir, '-o', 'json']);
    assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  const kubectl = (args: string[]) => {
    const r = spawnSync(KUBECTL, ['--kubeconfig', kc, '--cache-dir', mkdtempSync(join(tmp.path, 'kc-')), ...args], { encoding: 'utf8', timeout: 30000 });
    assert.equal(r.status, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const csrsOf = (node: string) =>
    (JSON.parse(kubectl(['get', 'csr', '-o', 'json'])) as { items: CertificateSigningRequest[] }).items.filter(
      (c) => c.metadata.annotations?.[TPM_ATTESTATION_ANNOTATION] && c.spec.extra?.['trustplane.io/attested-node']?.[0] === node,
    );
  /** The agent as a user runs it, with no bootstrap token in its environment. */
  const agent = (args: string[]) => {
    const env = { TRUSTPLANE_BOOTSTRAP_TOKEN: '' };
    const a = tpSpawn(['node', ...args], env);
    agents.push(a);
    return a;
  };
  const joinArgs = (tpm: SoftTpm, name: string, dir: string) => ['join', '--shielded', '--tcti', tpm.tcti, '--server', server, '--ca-cert-hash', caHash, '--name', name, '--node-data-dir', dir, '--wait-timeout', '30s'];
  const ekFile = (tpm: SoftTpm, name: string) => {
    const r = tp(['node', 'tpm', 'ek', '--tcti', tpm.tcti]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /BEGIN PUBLIC KEY/);
    const f = join(tmp.path, `${name}.ek.pem`);
    writeFileSync(f, r.stdout);
    return { file: f, fingerprint: /sha256:([0-9a-f]{64})/.exec(r.stderr)![1] };
  };
  /** Waits for the host's log (its output, read as it comes) to hold a line matching `re`. */
  const inHostLog = (re: RegExp) => waitFor(`the host log to match ${re}`, () => re.test(cp.host.output()) || undefined, 15000);

  /** One attestation exchange at the protocol level, unauthenticated over TLS verified by the cluster CA. */
  const post = <T>(path: string, body: unknown): Promise<{ code: number; body: T & { message?: string } }> =>
    new Promise((resolve, reject) => {
      const u = new URL(server);
      const data = Buffer.from(JSON.stringify(body));
      const req = request(
        { host: u.hostname, port: u.port, path, method: 'POST', ca: bundle, headers: { 'Content-Type': 'application/json', 'Content-Length': data.length } },
        (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve({ code: res.statusCode ?? 0, body: JSON.parse(text) }));
        },
      );
      req.on('error', reject);
      req.setTimeout(30000, () => req.destroy(new Error('timeout')));
      req.end(data);
    });
  const challengeFor = async (d: TpmDriver, node: string, ekOf: TpmDriver = d, reuse?: { publicArea: Buffer; name: Buffer }) => {
    const ak = reuse ?? (await d.createAk());
    const r = await post<Challenge>(TPM_ATTESTATION_PATH, { nodeName: node, ekPublic: await ekOf.ekPublicPem(), akPublic: ak.publicArea.toString('base64'), akName: ak.name.toString('base64') });
    return r;
  };
  const csrFor = async (node: string) => {
    const kp = await generateKeyPair({ kind: 'ec', curve: 'P-256' });
    const signer = softSigner(createPrivateKey(kp.privateKeyPem));
    const der = await buildCsr({ subject: [{ type: 'O', value: 'system:nodes' }, { type: 'CN', value: `system:node:${node}` }], signer });
    return { spki: signer.publicKey, request: Buffer.from(pemEncode('CERTIFICATE REQUEST', der)).toString('base64') };
  };
  const answerFor = async (d: TpmDriver, c: Challenge, node: string, o: { qualifyingData?: Buffer } = {}) => {
    const secret = await d.activateCredential(Buffer.from(c.credential, 'base64'));
    const csr = await csrFor(node);
    const q = await d.quote(o.qualifyingData ?? quoteQualifyingData(Buffer.from(c.nonce, 'base64'), csr.spki), c.pcrs);
    return { secret, csr, quote: q, pcrValues: await d.readPcrs(c.pcrs) };
  };

  before(async () => {
    tpmA = await startSwtpm();
    tpmB = await startSwtpm();
    cp = await startControlPlane(dataDir);
    const c = tpj(['clusters', 'create', 'alpha']);
    server = c.endpoint;
    caHash = c.caCertHash;
    const r = tp(['clusters', 'get-credentials', 'alpha', '--data-dir', dataDir], { env: { KUBECONFIG: kc } });
    assert.equal(r.status, 0, r.stderr);
    const doc = JSON.parse(kubectl(['config', 'view', '--raw', '-o', 'json'])) as { clusters: Array<{ cluster: { 'certificate-authority-data': string } }> };
    bundle = Buffer.from(doc.clusters[0].cluster['certificate-authority-data'], 'base64').toString();
    const pool = tpj(['node-pools', 'create', 'secure', '--cluster', 'alpha', '--shielded', '--pcr-policy', '0,1,2,3,7']);
    assert.deepEqual(pool.shielded, { pcrs: [0, 1, 2, 3, 7] });
  });
  after(async () => {
    for (const a of agents) await killChild(a.child, 'SIGTERM');
    await cp?.stop();
    await tpmA?.stop();
    await tpmB?.stop();
    for (const t of moreTpms) await t.stop();
    tmp.remove();
  });

  const nodeA = join(tmp.path, 'node-a');

  test('an enrolled TPM joins with no token; kubectl shows the node Ready; its CSR carries the evidence the approver checked', async () => {
    const ek = ekFile(tpmA, 'a');
    const e = tpj(['node-pools', 'enroll', 'secure', '--cluster', 'alpha', '--ek-pub', ek.file, '--node-name', 'shielded-1']);
    assert.equal(e.ekFingerprint, ek.fingerprint);
    assert.equal(e.pcrValuesFrom, 'pending-first-attestation');

    const a = agent(joinArgs(tpmA, 'shielded-1', nodeA));
    await waitFor('the shielded agent to run', () => {
      if (a.child.exitCode !== null) throw new Error(`the agent exited: ${a.output()}`);
      return /Running; Ctrl-C stops the agent/.test(a.output()) || undefined;
    }, 90000);
    const node = await waitFor('node shielded-1 Ready', () => {
      const nodes = JSON.parse(kubectl(['get', 'nodes', '-o', 'json'])) as { items: Node[] };
      return nodes.items.find((n) => n.metadata.name === 'shielded-1' && n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
    }, 30000);
    assert.ok(node);
    assert.match(kubectl(['get', 'nodes']), /shielded-1\s+Ready/);

    const [csr] = csrsOf('shielded-1');
    assert.ok(csr, 'the client CSR was made by the attestation endpoint');
    assert.equal(csr.spec.username, 'system:trustplane:tpm-attestor');
    const evidence = JSON.parse(csr.metadata.annotations![TPM_ATTESTATION_ANNOTATION]) as { ekFingerprint: string; akName: string; pcrs: number[]; pcrDigest: string; nonce: string };
    assert.equal(evidence.ekFingerprint, ek.fingerprint);
    assert.deepEqual(evidence.pcrs, [0, 1, 2, 3, 7]);
    const approved = csr.status?.conditions?.find((c) => c.type === 'Approved');
    assert.ok(approved, 'approved');
    assert.match(approved.message ?? '', new RegExp(`TPM attestation of node shielded-1: EK sha256:${ek.fingerprint}, AK name ${evidence.akName}, PCRs 0,1,2,3,7 digest ${evidence.pcrDigest}, nonce ${evidence.nonce}`));
    await inHostLog(/tpm attestation of node shielded-1 succeeded/);
    assert.equal(tpj(['node-pools', 'enrollments', 'secure', '--cluster', 'alpha'])[0].pcrValuesFrom, 'first-attestation');
  });

  test("the node's data dir, environment and command line hold no token or other secret that lets another machine join as it", async () => {
    const a = agents[0];
    const pid = a.child.pid!;
    const files: string[] = [];
    const walk = (d: string) => {
      for (const n of readdirSync(d)) {
        const p = join(d, n);
        if (statSync(p).isDirectory()) walk(p);
        else files.push(p);
      }
    };
    walk(nodeA);
    assert.ok(!existsSync(join(nodeA, 'bootstrap-token')), 'no bootstrap-token file');
    for (const f of files) assert.doesNotMatch(readFileSync(f, 'latin1'), TOKEN_SHAPE, `${f} holds something shaped like a bootstrap token`);
    const environ = readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
    assert.ok(!environ.some((v) => /^TRUSTPLANE_BOOTSTRAP_TOKEN=.+/.test(v)), 'no token in the environment');
    assert.doesNotMatch(environ.join('\n'), TOKEN_SHAPE);
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0');
    assert.ok(!cmdline.includes('--token'));
    const ps = spawnSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).stdout;
    assert.doesNotMatch(ps.split('\n').filter((l) => l.includes('shielded-1')).join('\n'), TOKEN_SHAPE);

    // Everything the node keeps, copied to "another machine" with its own TPM: it cannot join as the node. (The copy's
    // client certificate is removed: it is the node's current credential, revocable, and not a way to join.)
    const copy = join(tmp.path, 'node-a-copy');
    cpSync(nodeA, copy, { recursive: true });
    rmSync(join(copy, 'pki', 'kubelet-client-current.pem'));
    const cfg = JSON.parse(readFileSync(join(copy, 'config.json'), 'utf8'));
    cfg.shielded.tcti = tpmB.tcti;
    writeFileSync(join(copy, 'config.json'), JSON.stringify(cfg));
    const thief = agent(['start', '--node-data-dir', copy, '--wait-timeout', '20s']);
    assert.notEqual(await exited(thief.child, 60000), 0);
    assert.match(thief.output(), /the TPM \(EK sha256:[0-9a-f]{64}\) is not the one enrolled for node "shielded-1"/);
  });

  test('renewal after a lapse repeats the attestation; a renewal CSR made with the client certificate alone is left pending', async () => {
    const before = csrsOf('shielded-1').length;
    const a = agents[0];
    await killChild(a.child, 'SIGTERM');
    rmSync(join(nodeA, 'pki', 'kubelet-client-current.pem'));
    const again = agent(['start', '--node-data-dir', nodeA]);
    await waitFor('the agent to run again', () => {
      if (again.child.exitCode !== null) throw new Error(`the agent exited: ${again.output()}`);
      return /Running; Ctrl-C stops the agent/.test(again.output()) || undefined;
    }, 90000);
    assert.equal(csrsOf('shielded-1').length, before + 1, 'a new attested CSR');

    // The node's own certificate asks for a renewal the ordinary way: never approved for a shielded node.
    const pem = readFileSync(join(nodeA, 'pki', 'kubelet-client-current.pem'), 'utf8');
    const key = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY-----/.exec(pem)![0];
    const api = new ApiClient(server, { cert: pem.replace(key, ''), key, ca: bundle });
    try {
      const csr = await csrFor('shielded-1');
      const name = `renewal-${randomBytes(4).toString('hex')}`;
      await api.post('/apis/certificates.k8s.io/v1/certificatesigningrequests', {
        apiVersion: 'certificates.k8s.io/v1',
        kind: 'CertificateSigningRequest',
        metadata: { name },
        spec: { request: csr.request, signerName: 'kubernetes.io/kube-apiserver-client-kubelet', usages: ['digital signature', 'client auth'] },
      });
      const note = await waitFor('the approver to leave a note', () => {
        const c = JSON.parse(kubectl(['get', 'csr', name, '-o', 'json'])) as CertificateSigningRequest;
        assert.ok(!c.status?.conditions?.some((x) => x.type === 'Approved'), 'never approved');
        return c.metadata.annotations?.['trustplane.io/approval-note'];
      }, 20000);
      assert.match(note, /node "shielded-1" is a shielded node \(pool secure\): every client certificate it gets repeats the TPM attestation/);
    } finally {
      api.close();
    }
  });

  test('an unenrolled TPM, and a TPM enrolled for one node asking for another node\'s name, are refused', async () => {
    const dir = join(tmp.path, 'node-b');
    const unenrolled = agent(joinArgs(tpmB, 'shielded-2', dir));
    assert.notEqual(await exited(unenrolled.child, 60000), 0);
    assert.match(unenrolled.output(), /refused the TPM attestation of node shielded-2: no TPM is enrolled for node "shielded-2"/);
    await inHostLog(/"audit":"tpm-attestation".*"outcome":"refused","check":"enrollment","node":"shielded-2"/);

    const ek = ekFile(tpmB, 'b');
    tpj(['node-pools', 'enroll', 'secure', '--cluster', 'alpha', '--ek-pub', ek.file, '--node-name', 'shielded-2']);
    // TPM A is shielded-1's: asking for shielded-2 is refused.
    const impostor = agent(joinArgs(tpmA, 'shielded-2', join(tmp.path, 'node-a2')));
    assert.notEqual(await exited(impostor.child, 60000), 0);
    assert.match(impostor.output(), /is not the one enrolled for node "shielded-2" \(EK sha256:[0-9a-f]{64}\): a node may join only under the name its TPM is enrolled for/);
  });

  test('a replayed answer, a replayed quote, a quote over the wrong nonce and an AK of another TPM are refused', async () => {
    const b = new TpmDriver(tpmB.tcti);
    const a = new TpmDriver(tpmA.tcti);
    try {
      // A complete, valid exchange for shielded-2 (TPM B) ...
      const ak1 = await b.createAk();
      const first = await challengeFor(b, 'shielded-2', b, ak1);
      assert.equal(first.code, 201, JSON.stringify(first.body));
      const c1 = first.body;
      const ans = await answerFor(b, c1, 'shielded-2');
      const body = (x: typeof ans): ChallengeAnswer => ({
        secret: x.secret.toString('base64'),
        quote: { attest: x.quote.attest.toString('base64'), signature: x.quote.signature.toString('base64') },
        pcrValues: x.pcrValues,
        request: x.csr.request,
      });
      const good = await post<{ csrName: string }>(`${TPM_ATTESTATION_PATH}/${c1.challengeId}`, body(ans));
      assert.equal(good.code, 201, JSON.stringify(good.body));
      assert.match(good.body.csrName, /^node-csr-[0-9a-f]{32}$/);

      // ... replayed to the same challenge: answered once, never again.
      const replay = await post(`${TPM_ATTESTATION_PATH}/${c1.challengeId}`, body(ans));
      assert.equal(replay.code, 403);
      assert.match(replay.body.message ?? '', /was already answered.*a replayed one never/);

      // A new challenge, activated properly, answered with the old quote: refused (nonce).
      // (The same AK as the quote's, still loaded in TPM B: only the nonce differs.)
      const c2 = (await challengeFor(b, 'shielded-2', b, ak1)).body;
      const secret2 = await b.activateCredential(Buffer.from(c2.credential, 'base64'));
      const old = await post(`${TPM_ATTESTATION_PATH}/${c2.challengeId}`, { ...body(ans), secret: secret2.toString('base64') });
      assert.equal(old.code, 403);
      assert.match(old.body.message ?? '', /quote of node "shielded-2" is refused: the quote is over another nonce than this challenge's/);

      // A quote over a nonce of the node's choosing.
      const c3 = (await challengeFor(b, 'shielded-2')).body;
      const wrong = await answerFor(b, c3, 'shielded-2', { qualifyingData: randomBytes(32) });
      const w = await post(`${TPM_ATTESTATION_PATH}/${c3.challengeId}`, body(wrong));
      assert.equal(w.code, 403);
      assert.match(w.body.message ?? '', /another nonce/);

      // TPM A's EK (enrolled as shielded-1) with TPM B's AK: B cannot activate a credential made against A's EK.
      const c4 = (await challengeFor(b, 'shielded-1', a)).body;
      await assert.rejects(b.activateCredential(Buffer.from(c4.credential, 'base64')), /tpm2_activatecredential failed/);
      const guess = await post(`${TPM_ATTESTATION_PATH}/${c4.challengeId}`, { ...body(ans), secret: randomBytes(32).toString('base64') });
      assert.equal(guess.code, 403);
      assert.match(guess.body.message ?? '', /credential activation failed: the attestation key is not resident in the TPM whose EK \(sha256:[0-9a-f]{64}\) is enrolled for node "shielded-1"/);

      for (const check of ['replay', 'quote', 'activation']) await inHostLog(new RegExp(`"audit":"tpm-attestation".*"outcome":"refused","check":"${check}"`));
    } finally {
      a.close();
      b.close();
    }
  });

  test('a node whose PCRs changed is refused, the message naming the PCRs', async () => {
    const running = agents.find((x) => x.child.exitCode === null && /start/.test(x.child.spawnargs.join(' ')) && x.child.spawnargs.includes(nodeA));
    if (running) await killChild(running.child, 'SIGTERM');
    tpmA.tool('tpm2_pcrextend', [`7:sha256=${'ab'.repeat(32)}`]);
    rmSync(join(nodeA, 'pki', 'kubelet-client-current.pem'));
    const changed = agent(['start', '--node-data-dir', nodeA, '--wait-timeout', '20s']);
    assert.notEqual(await exited(changed.child, 60000), 0);
    assert.match(changed.output(), /the measured boot state of node "shielded-1" differs from what its enrollment allows: PCR 7 is [0-9a-f]{64}, expected [0-9a-f]{64} \(PCRs 7 changed\)/);
    await inHostLog(/"outcome":"refused","check":"pcrs","node":"shielded-1"/);
  });

  test('a pool with a manufacturer CA enrolls a TPM by its EK certificate on first attestation; one TPM is one node', async () => {
    const caDir = join(tmp.path, 'ek-ca');
    const tpmC = await startSwtpm({ ekCertCa: caDir });
    moreTpms.push(tpmC);
    const caFile = join(tmp.path, 'ek-ca.pem');
    writeFileSync(caFile, readFileSync(join(caDir, 'issuercert.pem'), 'utf8') + readFileSync(join(caDir, 'swtpm-localca-rootca-cert.pem'), 'utf8'));
    const pool = tpj(['node-pools', 'create', 'certified', '--cluster', 'alpha', '--shielded', '--ek-ca', caFile]);
    assert.match(pool.shielded.ekCaBundle, /BEGIN CERTIFICATE/);

    const a = agent([...joinArgs(tpmC, 'cert-1', join(tmp.path, 'node-c')), '--pool', 'certified']);
    await waitFor('the EK-certified agent to run', () => {
      if (a.child.exitCode !== null) throw new Error(`the agent exited: ${a.output()}`);
      return /Running; Ctrl-C stops the agent/.test(a.output()) || undefined;
    }, 90000);
    await waitFor('node cert-1 Ready', () => /cert-1\s+Ready/.test(kubectl(['get', 'nodes'])) || undefined, 30000);
    const [e] = tpj(['node-pools', 'enrollments', 'certified', '--cluster', 'alpha']);
    assert.equal(e.nodeName, 'cert-1');
    assert.equal(e.enrolledBy, 'ek-certificate');
    await inHostLog(/"outcome":"enrolled","node":"cert-1".*"ekIssuer":"CN=swtpm-localca"/);

    const twice = agent([...joinArgs(tpmC, 'cert-2', join(tmp.path, 'node-c2')), '--pool', 'certified']);
    assert.notEqual(await exited(twice.child, 60000), 0);
    assert.match(twice.output(), /is already enrolled as node "cert-1": one TPM is one node/);

    // A challenge alone enrolls nothing: an EK certificate is public, possession is proven only by the answer.
    const tpmE = await startSwtpm({ ekCertCa: caDir });
    moreTpms.push(tpmE);
    const de = new TpmDriver(tpmE.tcti);
    try {
      const ak = await de.createAk();
      const cert = await de.ekCertificate();
      assert.ok(cert, 'the manufactured TPM holds an EK certificate');
      const r = await post<Challenge>(TPM_ATTESTATION_PATH, { nodeName: 'cert-5', ekPublic: await de.ekPublicPem(), akPublic: ak.publicArea.toString('base64'), akName: ak.name.toString('base64'), pool: 'certified', ekCertificate: cert.toString('base64') });
      assert.equal(r.code, 201, JSON.stringify(r.body));
      assert.deepEqual(tpj(['node-pools', 'enrollments', 'certified', '--cluster', 'alpha']).map((x: { nodeName: string }) => x.nodeName), ['cert-1']);
    } finally {
      de.close();
    }

    const uncertified = agent([...joinArgs(tpmB, 'cert-3', join(tmp.path, 'node-c3')), '--pool', 'certified']);
    assert.notEqual(await exited(uncertified.child, 60000), 0);
    assert.match(uncertified.output(), /presented no EK certificate for pool "certified" to check/);

    const tpmD = await startSwtpm({ ekCertCa: join(tmp.path, 'other-ca') });
    moreTpms.push(tpmD);
    const foreign = agent([...joinArgs(tpmD, 'cert-4', join(tmp.path, 'node-c4')), '--pool', 'certified']);
    assert.notEqual(await exited(foreign.child, 60000), 0);
    assert.match(foreign.output(), /EK certificate of the TPM asking to be node "cert-4" is refused: .*is not issued by a CA of the pool's EK CA bundle/);
    await inHostLog(/"outcome":"refused","check":"ek-certificate","node":"cert-4"/);
  });

  test('bootstrap tokens: none is made for a shielded pool, and a token of another pool does not make an enrolled node', async () => {
    const r = tp(['node-pools', 'bootstrap-token', 'secure', '--cluster', 'alpha', '--data-dir', dataDir]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /node pool "secure" of cluster "alpha" is shielded: its nodes join by TPM attestation, never with a bootstrap token/);
    const t = tpj(['node-pools', 'bootstrap-token', 'default-pool', '--cluster', 'alpha']);
    const j = agent(['join', '--server', server, '--token', t.token, '--ca-cert-hash', caHash, '--name', 'shielded-2', '--node-data-dir', join(tmp.path, 'node-t'), '--wait-timeout', '10s']);
    assert.notEqual(await exited(j.child, 60000), 0);
    assert.match(j.output(), /node "shielded-2" is a shielded node \(pool secure\): it joins by TPM attestation only, never with a bootstrap token/);
    // (JSON lines: the message's quotes are escaped.)
    await inHostLog(/"requester":"system:bootstrap:[a-z0-9]{6}","msg":"left for an administrator: node \\"shielded-2\\" is a shielded node \(pool secure\)/);
  });
});
