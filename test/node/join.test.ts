// Joining a real cluster (CA service, store, API server, approver and signer): the happy path, every refusal, restarts.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:https';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createBootstrapToken, type CertificateSigningRequest, type Lease, type Node } from '../../src/apiserver/index.js';
import { joinNode, startNodeAgent, type NodeAgent, type NodeAgentOptions } from '../../src/node/agent.js';
import { ManualClock } from '../../src/util/clock.js';
import { TrustplaneError } from '../../src/util/errors.js';
import { waitFor } from '../../src/util/wait.js';
import { tempDir } from '../helpers/tmp.js';
import { endpointGet, startNodeTestCluster, startRecordingProxy, type NodeTestCluster } from './cluster.js';

const NODES = '/api/v1/nodes';
const LEASES = '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases';
const CSRS = '/apis/certificates.k8s.io/v1/certificatesigningrequests';

async function refusal(p: Promise<unknown>): Promise<TrustplaneError> {
  try {
    const agent = (await p) as NodeAgent;
    await agent.stop();
  } catch (e) {
    assert.ok(e instanceof TrustplaneError, `expected a TrustplaneError, got ${(e as Error)?.stack}`);
    return e;
  }
  assert.fail('expected the join to be refused');
}

describe('node join', () => {
  let c: NodeTestCluster;
  const dirs: Array<{ path: string; remove(): void }> = [];
  const agents: NodeAgent[] = [];
  const dataDir = () => {
    const d = tempDir('tp-node-');
    dirs.push(d);
    return join(d.path, 'node');
  };
  const opts = (o: Partial<NodeAgentOptions>): NodeAgentOptions => ({
    dataDir: o.dataDir ?? dataDir(),
    server: c.api.url,
    caCertHash: c.caCertHash,
    waitTimeoutMs: 30_000,
    leaseIntervalMs: 200,
    endpoint: { listen: {} },
    ...o,
  });
  const start = async (o: NodeAgentOptions, fn = joinNode) => {
    const a = await fn(o);
    agents.push(a);
    return a;
  };
  const admin = () => c.admin;

  before(async () => {
    c = await startNodeTestCluster({ otherClusters: ['beta'] });
  });
  after(async () => {
    for (const a of agents) await a.stop();
    await c?.stop();
    for (const d of dirs) d.remove();
  });

  let n1Dir: string;
  let n1Token: { token: string; id: string };

  it('joins: discovery by CA hash, token CSR approved and signed, Node Ready with addresses, Lease renewed, serving cert, endpoint', async () => {
    n1Token = await c.token();
    n1Dir = dataDir();
    const agent = await start(opts({ dataDir: n1Dir, token: n1Token.token, nodeName: 'n1' }));
    assert.equal(agent.nodeName, 'n1');

    const node = (await c.call(admin(), 'GET', `${NODES}/n1`)).json as Node;
    assert.deepEqual(node.status?.addresses, [
      { type: 'InternalIP', address: '127.0.0.1' },
      { type: 'Hostname', address: 'n1' },
    ]);
    const ready = node.status?.conditions?.find((x) => x.type === 'Ready');
    assert.equal(ready?.status, 'True');
    assert.ok(ready?.lastHeartbeatTime);
    assert.match(node.status?.nodeInfo?.kubeletVersion ?? '', /^trustplane-node\/\d+\.\d+\.\d+/);

    const lease1 = (await c.call(admin(), 'GET', `${LEASES}/n1`)).json as Lease;
    assert.equal(lease1.spec?.holderIdentity, 'n1');
    assert.equal(lease1.spec?.leaseDurationSeconds, 40);
    await waitFor('the Lease to be renewed', async () => {
      const l = (await c.call(admin(), 'GET', `${LEASES}/n1`)).json as Lease;
      return l.spec?.renewTime !== lease1.spec?.renewTime ? true : undefined;
    }, 10_000);

    const csrs = await c.csrs();
    const client = csrs.find((x) => x.spec.signerName === 'kubernetes.io/kube-apiserver-client-kubelet')!;
    assert.equal(client.spec.username, `system:bootstrap:${n1Token.id}`, 'the first CSR is made with the bootstrap token');
    assert.deepEqual(client.spec.usages, ['digital signature', 'client auth']);
    assert.ok(client.status?.conditions?.some((x) => x.type === 'Approved'));
    const serving = csrs.find((x) => x.spec.signerName === 'kubernetes.io/kubelet-serving')!;
    assert.equal(serving.spec.username, 'system:node:n1', 'then only mTLS');
    assert.deepEqual(serving.spec.usages, ['digital signature', 'server auth']);

    const s = agent.status();
    assert.equal(s.phase, 'running');
    assert.ok(s.servingCertificate, 'serving certificate issued');
    const renewAt = Date.parse(s.clientCertificate.renewAt);
    const nb = Date.parse(s.clientCertificate.notBefore);
    const life = Date.parse(s.clientCertificate.notAfter) - nb;
    assert.ok(renewAt >= nb + 0.7 * life - 1 && renewAt <= nb + 0.9 * life + 1, 'renewal planned between 70 % and 90 % of the lifetime');

    // The endpoint: admin (cluster root CA) allowed, nodes and strangers not.
    const url = s.endpoint!;
    assert.equal((await endpointGet(url, '/healthz', admin(), c.bundle)).text, 'ok');
    const configz = await endpointGet(url, '/configz', admin(), c.bundle);
    assert.equal(JSON.parse(configz.text).nodeName, 'n1');
    assert.ok(!configz.text.includes(n1Token.token.split('.')[1]), '/configz holds no token');
    const nodeCred = await c.issue('kubernetes.io/kube-apiserver-client-kubelet', [{ type: 'O', value: 'system:nodes' }, { type: 'CN', value: 'system:node:n9' }]);
    assert.equal((await endpointGet(url, '/healthz', nodeCred, c.bundle)).status, 403);
    await assert.rejects(endpointGet(url, '/healthz', {}, c.bundle), 'no client certificate: the handshake fails');
    const stranger = await c.issue('kubernetes.io/kube-apiserver-client', [{ type: 'CN', value: 'x' }], undefined, 'beta');
    await assert.rejects(endpointGet(url, '/healthz', stranger, c.bundle), "another cluster's certificate: the handshake fails");

    // Logs: tail and follow.
    const tail = await endpointGet(url, '/logs?tailLines=2', admin(), c.bundle);
    assert.equal(tail.status, 200);
    assert.equal(tail.text.trimEnd().split('\n').length, 2);
    assert.doesNotThrow(() => tail.text.trimEnd().split('\n').map((l) => JSON.parse(l)));
    // The last line comes first: once it has arrived the endpoint follows from the end it read, so the marker is
    // appended only then (appended earlier it would be part of the tail, and prove nothing about following).
    let appended = false;
    const followed = await new Promise<string>((resolve, reject) => {
      const u = new URL('/logs?tailLines=1&follow=true', url);
      const req = request({ host: u.hostname, port: u.port, path: u.pathname + u.search, ca: c.bundle, cert: admin().cert, key: admin().key, agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          text += d;
          if (!appended && text.endsWith('\n')) {
            appended = true;
            appendFileSync(join(n1Dir, 'agent.log'), '{"msg":"marker-line"}\n');
          }
          if (text.includes('marker-line')) {
            req.destroy();
            resolve(text);
          }
        });
      });
      req.on('error', (e) => (e.message.includes('socket hang up') ? undefined : reject(e)));
      req.end();
      setTimeout(() => reject(new Error(`follow did not stream the new line within 10 s (marker appended: ${appended})`)), 10_000).unref();
    });
    assert.ok(appended);
    assert.match(followed, /marker-line/);
    assert.doesNotMatch(followed.split('\n')[0], /marker-line/, 'the marker came after the tail, by following');
  });

  it('keeps keys local: files 0600 in a 0700 dir, no private key or token in any API object or in the log', async () => {
    const p = (f: string) => join(n1Dir, f);
    assert.equal(statSync(n1Dir).mode & 0o777, 0o700);
    assert.equal(statSync(p('pki')).mode & 0o777, 0o700);
    for (const f of ['pki/kubelet-client-current.pem', 'pki/kubelet-server-current.pem', 'bootstrap-token', 'agent.log', 'config.json']) {
      assert.equal(statSync(p(f)).mode & 0o777, 0o600, `${f} is 0600`);
    }
    assert.deepEqual(readdirSync(p('pki')).filter((f) => f.endsWith('.tmp')), [], 'no pending key left');
    const keys = ['client', 'server'].map((k) => {
      const pem = readFileSync(p(`pki/kubelet-${k}-current.pem`), 'utf8');
      const key = /-----BEGIN PRIVATE KEY-----\n([\s\S]+?)-----END PRIVATE KEY-----/.exec(pem)![1].replace(/\s+/g, '');
      return key;
    });
    const secret = n1Token.token.split('.')[1];
    const everything = [
      (await c.call(admin(), 'GET', CSRS)).text,
      (await c.call(admin(), 'GET', NODES)).text,
      (await c.call(admin(), 'GET', LEASES)).text,
      readFileSync(p('agent.log'), 'utf8'),
      readFileSync(p('config.json'), 'utf8'),
    ].join('\n');
    assert.ok(!everything.includes('PRIVATE KEY'));
    for (const k of keys) {
      assert.ok(!everything.includes(k), 'the key itself appears nowhere');
      assert.ok(!everything.includes(Buffer.from(k, 'base64').toString('base64url').slice(10, 60)));
    }
    // The CSRs embed PEM requests in base64: decoded, they still hold no private key.
    for (const csr of (await c.call(admin(), 'GET', CSRS)).json.items as CertificateSigningRequest[]) {
      assert.ok(!Buffer.from(csr.spec.request, 'base64').toString('utf8').includes('PRIVATE'));
    }
    assert.ok(!everything.includes(secret), 'the token secret appears nowhere');
  });

  it('restarts on its stored credentials: no new CSR, same certificates', async () => {
    const before = agents.pop()!;
    const serial = before.status().clientCertificate.serial;
    await before.stop();
    const count = (await c.csrs()).length;
    const again = await start(opts({ dataDir: n1Dir, server: undefined, caCertHash: undefined }), startNodeAgent);
    assert.equal(again.nodeName, 'n1');
    assert.equal(again.status().clientCertificate.serial, serial);
    assert.equal((await c.csrs()).length, count, 'no new CSR');
    // The same data dir refuses to become another node or another cluster.
    const e = await refusal(joinNode(opts({ dataDir: n1Dir, token: n1Token.token, nodeName: 'other' })));
    assert.match(e.message, /belongs to node "n1"/);
  });

  it('wrong CA hash: aborts before any secret is sent, saying which hash the cluster has', async () => {
    const t = await c.token({ nodeName: 'n2' });
    const serving = await c.issue('trustplane.io/kube-apiserver-serving', [{ type: 'CN', value: 'kube-apiserver' }], { dns: [], ip: ['127.0.0.1'] });
    const proxy = await startRecordingProxy(c.api.url, serving);
    const wrong = `sha256:${createHash('sha256').update('not the CA').digest('hex')}`;
    const dir = dataDir();
    try {
      const e = await refusal(joinNode(opts({ dataDir: dir, server: proxy.url, token: t.token, caCertHash: wrong, nodeName: 'n2' })));
      assert.equal(e.reason, 'Unauthorized');
      assert.equal(e.exitCode, 3);
      assert.ok(e.message.startsWith(`the cluster CA's public key hash is ${c.caCertHash}, not the ${wrong} you gave`), e.message);
      assert.match(e.hint ?? '', /check --ca-cert-hash/);
      // What the server saw: one anonymous read of cluster-info, nothing else.
      assert.deepEqual(proxy.seen.map((r) => `${r.method} ${r.path}`), ['GET /api/v1/namespaces/kube-public/configmaps/cluster-info']);
      assert.ok(proxy.seen.every((r) => r.headers.authorization === undefined && !JSON.stringify(r).includes(t.token.split('.')[1])));
      assert.ok(!(await c.csrs()).some((x) => x.spec.username === `system:bootstrap:${t.id}`), 'no CSR');
      assert.equal((await c.tokenInfo(t.id))?.usedBy, undefined, 'the single-use token is unspent');
      assert.ok(!existsSync(join(dir, 'bootstrap-token')), 'the token was not even written down');
    } finally {
      await proxy.close();
    }
  });

  it("a server presenting another cluster's certificate is refused, before the token is sent", async () => {
    const t = await c.token();
    const beta = await c.issue('trustplane.io/kube-apiserver-serving', [{ type: 'CN', value: 'kube-apiserver' }], { dns: [], ip: ['127.0.0.1'] }, 'beta');
    // It relays the real cluster-info (public), so the CA hash matches; its own certificate is beta's.
    const proxy = await startRecordingProxy(c.api.url, beta);
    try {
      const e = await refusal(joinNode(opts({ server: proxy.url, token: t.token, nodeName: 'n3' })));
      assert.equal(e.reason, 'Unauthorized');
      assert.match(e.message, new RegExp(`the server at ${proxy.url} presents a TLS certificate that the cluster CA \\(${c.caCertHash}\\) did not issue`));
      assert.match(e.message, /nothing was sent to it/);
      assert.match(e.hint ?? '', /check --server/);
      assert.ok(proxy.seen.every((r) => r.method === 'GET' && r.path.endsWith('/cluster-info') && r.headers.authorization === undefined));
      assert.ok(!(await c.csrs()).some((x) => x.spec.username === `system:bootstrap:${t.id}`));
    } finally {
      await proxy.close();
    }
  });

  it('unknown or expired token: a clear error and what to do', async () => {
    const unknown = await refusal(joinNode(opts({ token: 'abcdef.0123456789abcdef', nodeName: 'n4' })));
    assert.equal(unknown.reason, 'Unauthorized');
    assert.match(unknown.message, /refused bootstrap token abcdef: it is unknown, expired or deleted/);
    assert.match(unknown.hint ?? '', /trustplane node-pools bootstrap-token POOL/);

    const expired = await createBootstrapToken(c.base.store, { pool: 'default-pool', ttlSeconds: 60 }, new ManualClock(Date.now() - 3600_000));
    const e = await refusal(joinNode(opts({ token: expired.token, nodeName: 'n4' })));
    assert.match(e.message, new RegExp(`refused bootstrap token ${expired.id}`));

    const malformed = await refusal(joinNode(opts({ token: 'not-a-token', nodeName: 'n4' })));
    assert.equal(malformed.reason, 'Invalid');
    assert.match(malformed.hint ?? '', /abcdef\.0123456789abcdef/);
  });

  it('unreachable server: a clear error', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createNetServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const e = await refusal(joinNode(opts({ server: `https://127.0.0.1:${port}`, token: (await c.token()).token, nodeName: 'n5' })));
    assert.equal(e.reason, 'Unavailable');
    assert.match(e.message, new RegExp(`cannot reach the API server at https://127.0.0.1:${port}: .*ECONNREFUSED`));
    assert.match(e.hint ?? '', /check --server/);
  });

  it('a request the approver leaves pending times out with what to check; an administrator denial ends the join with its reason', async () => {
    // n1 holds a live credential: a second bootstrap for n1 (a wiped disk, say) is not approved automatically.
    const t = await c.token();
    const dir = dataDir();
    const timedOut = await refusal(joinNode(opts({ dataDir: dir, token: t.token, nodeName: 'n1', waitTimeoutMs: 3000 })));
    assert.equal(timedOut.reason, 'Timeout');
    const name = /certificate signing request (node-csr-[0-9a-f]+)/.exec(timedOut.message)?.[1];
    assert.ok(name, timedOut.message);
    assert.match(timedOut.message, /already holds a live client credential/, 'the approver says why');
    assert.match(timedOut.hint ?? '', new RegExp(`is the approver running\\? \`kubectl get csr ${name}\``));

    // The same request is waited on again after a restart, and an administrator denies it.
    const denying = (async () => {
      await waitFor('the pending CSR', async () => ((await c.csrs()).some((x) => x.metadata.name === name) ? true : undefined));
      const cur = (await c.call(admin(), 'GET', `${CSRS}/${name}`)).json;
      cur.status = { conditions: [{ type: 'Denied', status: 'True', reason: 'NodeAlreadyJoined', message: 'node n1 is running; this join is not expected' }] };
      const r = await c.call(admin(), 'PUT', `${CSRS}/${name}/approval`, { body: cur });
      assert.equal(r.status, 200, r.text);
    })();
    const denied = await refusal(joinNode(opts({ dataDir: dir, token: t.token, nodeName: 'n1', waitTimeoutMs: 20_000 })));
    await denying;
    assert.equal(denied.reason, 'Forbidden');
    assert.equal(denied.message, `certificate signing request ${name} was denied (NodeAlreadyJoined): node n1 is running; this join is not expected`);
    assert.equal((await c.csrs()).filter((x) => x.spec.username === `system:bootstrap:${t.id}`).length, 1, 'one request, waited on twice');
    assert.deepEqual(readdirSync(join(dir, 'pki')).filter((f) => f.endsWith('.tmp')), [], 'the next join makes a new request');
    rmSync(dir, { recursive: true, force: true });
  });
});
