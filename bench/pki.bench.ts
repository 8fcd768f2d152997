// How long the CSR and certificate parsers take on hostile input: the slowest of many mutated inputs, beside the parse of the valid one.
// (The figure the parser fuzz test used to assert; timing belongs here, the fuzz test checks only what is accepted.)
import { decodeCsr } from '../src/pki/csr.js';
import { buildCsr, parseCertificate } from '../src/pki/index.js';
import { TrustplaneError } from '../src/util/errors.js';
import { derMutator } from '../test/helpers/der-mutations.js';
import { ALGORITHMS, DAY, T0, makeCa, prng, testSigner } from '../test/pki/helpers.js';
import { percentile, result, type Benchmark } from './lib.js';

const MUTATIONS = Number(process.env.PKI_BENCH_MUTATIONS ?? 50_000);

async function seeds(): Promise<Array<{ kind: 'csr' | 'cert'; der: Buffer }>> {
  const out: Array<{ kind: 'csr' | 'cert'; der: Buffer }> = [];
  for (const alg of ALGORITHMS) {
    const signer = testSigner(alg, 1);
    out.push({ kind: 'csr', der: await buildCsr({ subject: [{ type: 'O', value: 'system:nodes' }, { type: 'CN', value: `system:node:${alg.kind}` }], sans: { dns: ['n1.example'], ip: ['10.1.2.3'] }, signer }) });
    const ca = await makeCa([{ type: 'CN', value: `bench ${alg.kind}` }], testSigner(alg, 0), { pathLen: 1 });
    out.push({ kind: 'cert', der: ca.cert.der });
    const leaf = await ca.issue({ subject: [{ type: 'CN', value: 'leaf' }], notAfter: new Date(T0.getTime() + 365 * DAY), publicKey: signer.publicKey, isCA: false, keyUsage: ['digitalSignature'], extKeyUsage: ['serverAuth'], sans: { dns: ['leaf.example'] } });
    out.push({ kind: 'cert', der: leaf.der });
  }
  return out;
}

/** Milliseconds one parse takes; refusals (TrustplaneError) are the expected outcome of most mutations. */
function timeParse(kind: 'csr' | 'cert', der: Buffer): number {
  const t0 = performance.now();
  try {
    if (kind === 'csr') decodeCsr(der);
    else parseCertificate(der);
  } catch (e) {
    if (!(e instanceof TrustplaneError)) throw e;
  }
  return performance.now() - t0;
}

const bench: Benchmark = {
  names: ['pki.parse.hostile_slowest_ms'],
  async run() {
    const corpus = await seeds();
    const rnd = prng(20260301);
    const mutate = derMutator(rnd);
    // Warm-up, then the valid inputs as the anchor.
    for (let i = 0; i < 2000; i++) for (const s of corpus) timeParse(s.kind, s.der);
    const valid = Array.from({ length: 2000 }, (_, i) => timeParse(corpus[i % corpus.length].kind, corpus[i % corpus.length].der)).sort((a, b) => a - b);
    const hostile: number[] = [];
    for (let k = 0; k < MUTATIONS; k++) {
      const s = corpus[Math.floor(rnd() * corpus.length)];
      hostile.push(timeParse(s.kind, mutate(s.der)));
    }
    hostile.sort((a, b) => a - b);
    const slowest = hostile[hostile.length - 1];
    return [
      result('pki.parse.hostile_slowest_ms', slowest, 'ms', 'median parse of the valid inputs', percentile(valid, 50), {
        mutations: MUTATIONS,
        hostile_p50_ms: Math.round(percentile(hostile, 50) * 1000) / 1000,
        hostile_p99_ms: Math.round(percentile(hostile, 99) * 1000) / 1000,
      }),
    ];
  },
};
export default bench;
