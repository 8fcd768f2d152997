// Sign requests made together go out as one sign-batch; each caller still gets its own certificate or refusal.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BatchResult, IssuedCertificate, SignInput } from '../../src/ca/api.js';
import { SignBatcher, type BatchSigningClient } from '../../src/ca/sign-batcher.js';
import { TrustplaneError } from '../../src/util/errors.js';

const issued = (csr: string) => ({ certificate: `cert for ${csr}` }) as unknown as IssuedCertificate;
const input = (csr: string) => ({ signer: 'kubernetes.io/kube-apiserver-client-kubelet', csr });

function fakeClient(o: { failBatch?: Error } = {}) {
  const calls: string[] = [];
  const client: BatchSigningClient = {
    async sign(_cluster, req) {
      calls.push(`sign ${req.csr}`);
      if (req.csr.startsWith('bad')) throw new TrustplaneError('Forbidden', `refused ${req.csr}`);
      return issued(req.csr);
    },
    async signBatch(_cluster, reqs: Array<SignInput & { csr: string }>): Promise<BatchResult[]> {
      calls.push(`batch ${reqs.map((r) => r.csr).join(',')}`);
      if (o.failBatch) throw o.failBatch;
      return reqs.map((r) => (r.csr.startsWith('bad') ? { error: { reason: 'Forbidden', message: `refused ${r.csr}` } } : { ok: issued(r.csr) }));
    },
  };
  return { client, calls };
}

describe('sign batcher', () => {
  it('requests of one turn are one sign-batch; each gets its certificate or its refusal with the CA reason', async () => {
    const { client, calls } = fakeClient();
    const b = new SignBatcher(client, 'c1');
    const results = await Promise.allSettled([b.sign(input('a')), b.sign(input('bad-b')), b.sign(input('c'))]);
    assert.deepEqual(calls, ['batch a,bad-b,c']);
    assert.equal((results[0] as PromiseFulfilledResult<IssuedCertificate>).value.certificate, 'cert for a');
    const refused = (results[1] as PromiseRejectedResult).reason;
    assert.ok(refused instanceof TrustplaneError && refused.reason === 'Forbidden' && /refused bad-b/.test(refused.message));
    assert.equal((results[2] as PromiseFulfilledResult<IssuedCertificate>).value.certificate, 'cert for c');
  });

  it('a lone request is a plain sign; a failed batch call fails each of its requests', async () => {
    const { client, calls } = fakeClient();
    assert.equal((await new SignBatcher(client, 'c1').sign(input('x'))).certificate, 'cert for x');
    assert.deepEqual(calls, ['sign x']);
    const down = new TrustplaneError('Unavailable', 'CA service unreachable');
    const failing = new SignBatcher(fakeClient({ failBatch: down }).client, 'c1');
    const results = await Promise.allSettled([failing.sign(input('p')), failing.sign(input('q'))]);
    assert.ok(results.every((r) => r.status === 'rejected' && r.reason === down));
  });
});
