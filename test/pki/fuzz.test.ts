// Bounded, seeded fuzzing of the CSR and certificate parsers: only TrustplaneError ever escapes, and whatever is accepted
// is also read by @peculiar/asn1-schema and re-encoded by it to the identical DER (so it was canonical DER).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeCsr, parseCsr } from '../../src/pki/csr.js';
import { encodeBasicConstraints, encodeKeyUsage } from '../../src/pki/extensions.js';
import { OID, buildCsr, parseCertificate } from '../../src/pki/index.js';
import { TrustplaneError } from '../../src/util/errors.js';
import { ALGORITHMS, DAY, T0, makeCa, prng, testSigner } from './helpers.js';
import { dotted, referenceCertificate, referenceCsr } from './schema.js';
import { derMutator } from '../helpers/der-mutations.js';

const MUTATIONS = 20_000;
// A fixed seed keeps CI repeatable; PKI_FUZZ_SEED explores other sequences by hand.
const rnd = prng(Number(process.env.PKI_FUZZ_SEED ?? 20260301));
const int = (n: number) => Math.floor(rnd() * n);
const mutate = derMutator(rnd);

function reference<T>(read: () => T, hex: string): T {
  try {
    return read();
  } catch (e) {
    return assert.fail(`accepted ${hex}, which the reference parser refuses: ${String(e)}`);
  }
}

async function seeds(): Promise<{ csrs: Buffer[]; certs: Buffer[] }> {
  const csrs: Buffer[] = [];
  const certs: Buffer[] = [];
  for (const alg of ALGORITHMS) {
    const signer = testSigner(alg, 1);
    csrs.push(
      await buildCsr({
        subject: [{ type: 'O', value: 'system:nodes' }, { type: 'CN', value: `system:node:ä-${alg.kind}` }],
        sans: { dns: ['n1.example'], ip: ['10.1.2.3', 'fd00::9'], uri: ['spiffe://td/n1'], email: ['a@b.c'] },
        extensions: [
          { oid: OID.keyUsage, critical: true, value: encodeKeyUsage(['digitalSignature', 'keyAgreement']) },
          { oid: OID.basicConstraints, critical: true, value: encodeBasicConstraints(false) },
        ],
        signer,
      }),
    );
    const ca = await makeCa([{ type: 'C', value: 'DE' }, { type: 'CN', value: `fuzz ${alg.kind}` }], testSigner(alg, 0), { pathLen: 2 });
    certs.push(ca.cert.der);
    const leaf = await ca.issue({
      subject: [{ type: 'CN', value: 'leaf' }, { type: 'serialNumber', value: '42' }],
      notAfter: new Date(T0.getTime() + 20000 * DAY),
      publicKey: signer.publicKey,
      isCA: false,
      keyUsage: ['digitalSignature', 'keyEncipherment'],
      extKeyUsage: ['serverAuth', 'clientAuth'],
      sans: { dns: ['leaf.example'], ip: ['192.0.2.1'] },
    });
    certs.push(leaf.der);
  }
  return { csrs, certs };
}

test(`fuzz: ${MUTATIONS} mutations of CSRs and certificates`, async (t) => {
  const { csrs, certs } = await seeds();
  let accepted = 0;
  let verifiedFully = 0;
  let slowest = 0;
  const reasons = new Map<string, number>();
  for (let k = 0; k < MUTATIONS; k++) {
    const isCsr = k % 2 === 0;
    const corpus = isCsr ? csrs : certs;
    const input = mutate(corpus[int(corpus.length)]);
    const t0 = performance.now();
    let result: ReturnType<typeof decodeCsr> | ReturnType<typeof parseCertificate> | undefined;
    try {
      result = isCsr ? decodeCsr(input) : parseCertificate(input);
    } catch (e) {
      if (!(e instanceof TrustplaneError)) {
        assert.fail(`mutation ${k} (${isCsr ? 'CSR' : 'certificate'} ${input.toString('hex')}) threw ${(e as Error)?.stack ?? String(e)}`);
      }
      const key = e.message.replace(/\d+/g, 'N').slice(0, 60);
      reasons.set(key, (reasons.get(key) ?? 0) + 1);
    }
    slowest = Math.max(slowest, performance.now() - t0);
    if (!result) continue;
    accepted++;
    const hex = input.toString('hex');
    if (isCsr) {
      const ours = result as ReturnType<typeof decodeCsr>;
      const ref = reference(() => referenceCsr(input), hex);
      assert.deepEqual(ref.reencoded, input, `accepted CSR ${hex} is not canonical DER`);
      assert.deepEqual(dotted(ours.subject), ref.subject, `CSR ${hex}: subject`);
      assert.deepEqual(ours.publicKey, ref.publicKey, `CSR ${hex}: key`);
      assert.deepEqual(ours.extensions, ref.extensions, `CSR ${hex}: extensions`);
      // The full parse must agree with the signature: it fails unless the mutation missed every signed byte.
      try {
        parseCsr(input);
        verifiedFully++;
        assert.ok(csrs.some((c) => c.equals(input)), `CSR ${hex} was changed and still verifies`);
      } catch (e) {
        if (e instanceof assert.AssertionError) throw e;
        assert.ok(e instanceof TrustplaneError && /signature does not verify|not valid/.test(e.message), `CSR ${hex}: ${String(e)}`);
      }
    } else {
      const ours = result as ReturnType<typeof parseCertificate>;
      const ref = reference(() => referenceCertificate(input), hex);
      assert.deepEqual(ref.reencoded, input, `accepted certificate ${hex} is not canonical DER`);
      assert.deepEqual(dotted(ours.subject), ref.subject, `certificate ${hex}: subject`);
      assert.deepEqual(dotted(ours.issuer), ref.issuer, `certificate ${hex}: issuer`);
      assert.deepEqual(ours.serial, ref.serial, `certificate ${hex}: serial`);
      assert.equal(ours.notBefore.getTime(), ref.notBefore.getTime(), `certificate ${hex}: notBefore`);
      assert.equal(ours.notAfter.getTime(), ref.notAfter.getTime(), `certificate ${hex}: notAfter`);
      assert.deepEqual(ours.extensions, ref.extensions, `certificate ${hex}: extensions`);
      assert.deepEqual(ours.signature, ref.signature);
    }
  }
  // The cross-check above must have had something to check. How fast the parsers stay on hostile input is a figure of
  // the benchmark (pki.parse.hostile_slowest_ms in bench/pki.bench.ts), not an assertion here.
  assert.ok(accepted > MUTATIONS / 50, `only ${accepted} mutations were accepted`);
  assert.ok(reasons.size > 40, `only ${reasons.size} distinct refusals`);
  t.diagnostic(`accepted ${accepted} of ${MUTATIONS} (${verifiedFully} of them unchanged CSRs that verify), ${reasons.size} distinct refusals, slowest ${slowest.toFixed(1)} ms`);
});
