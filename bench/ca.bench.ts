// CA issuance rates: in-process on one core, and through the CA service's mTLS API, beside OpenSSL's P-256 bound.
import { cpus } from 'node:os';
import { AuditLog } from '../src/ca/audit.js';
import { CaService } from '../src/ca/service.js';
import { CaStateFile } from '../src/ca/state.js';
import { openKeyStore } from '../src/keystore/registry.js';
import { buildCsr, generateKeyPair, pemEncode } from '../src/pki/index.js';
import { systemClock } from '../src/util/clock.js';
import { tempDir } from '../test/helpers/tmp.js';
import { startCaChild } from '../test/ca/helpers.js';
import { opensslP256, result, type Benchmark } from './lib.js';

const KUBELET = 'kubernetes.io/kube-apiserver-client-kubelet';

async function makeCsrs(n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const kp = await generateKeyPair({ kind: 'ec', curve: 'P-256' });
    const der = await buildCsr({ subject: [{ type: 'O', value: 'system:nodes' }, { type: 'CN', value: `system:node:bench-${i}` }], signer: kp.signer });
    out.push(pemEncode('CERTIFICATE REQUEST', der));
  }
  return out;
}

async function inProcess(csrs: string[], seconds: number): Promise<number> {
  const tmp = tempDir('tp-bench-ca-');
  try {
    const keys = await openKeyStore({ type: 'soft', dir: `${tmp.path}/keystore` });
    const audit = new AuditLog(`${tmp.path}/audit.log`, systemClock);
    const svc = new CaService(keys, new CaStateFile(`${tmp.path}/state.json`), audit, systemClock);
    await svc.init();
    await svc.createCluster('bench', {}, 'bench');
    const caller = { role: 'fleet' as const, name: 'fleet:bench' };
    // warm-up
    for (let i = 0; i < 200; i++) await svc.sign(caller, 'bench', { signer: KUBELET, csr: csrs[i % csrs.length] });
    let n = 0;
    const start = process.hrtime.bigint();
    const deadline = start + BigInt(seconds * 1e9);
    while (process.hrtime.bigint() < deadline) {
      const batch = [];
      for (let i = 0; i < 32; i++) batch.push(svc.sign(caller, 'bench', { signer: KUBELET, csr: csrs[(n + i) % csrs.length] }));
      await Promise.all(batch);
      n += 32;
    }
    const rate = n / (Number(process.hrtime.bigint() - start) / 1e9);
    audit.close();
    await keys.close();
    return rate;
  } finally {
    tmp.remove();
  }
}

async function throughApi(csrs: string[], seconds: number): Promise<{ rate: number; workers: number }> {
  const tmp = tempDir('tp-bench-caapi-');
  const ca = await startCaChild(tmp.path);
  try {
    const fleet = ca.fleet();
    await fleet.createCluster({ name: 'bench' });
    const batchSize = 64;
    const inflight = 8;
    const run = async (until: number) => {
      let n = 0;
      let i = 0;
      const lane = async () => {
        while (Date.now() < until) {
          const reqs = [];
          for (let k = 0; k < batchSize; k++) reqs.push({ signer: KUBELET, csr: csrs[i++ % csrs.length] });
          const res = await fleet.signBatch('bench', reqs);
          for (const r of res) if (!('ok' in r)) throw new Error(`bench sign failed: ${JSON.stringify(r)}`);
          n += res.length;
        }
      };
      await Promise.all(Array.from({ length: inflight }, lane));
      return n;
    };
    await run(Date.now() + 1000); // warm-up
    const start = Date.now();
    const n = await run(start + seconds * 1000);
    return { rate: n / ((Date.now() - start) / 1000), workers: cpus().length };
  } finally {
    await ca.stop('SIGTERM');
    tmp.remove();
  }
}

const bench: Benchmark = {
  names: ['ca.issue.inprocess', 'ca.issue.api'],
  async run() {
    const only = process.argv.slice(2).filter((a) => !a.startsWith('-'));
    const want = (n: string) => only.length === 0 || only.some((p) => n.startsWith(p));
    const ossl = opensslP256(2);
    const csrs = await makeCsrs(2000);
    const out = [];
    const extra = { openssl_sign_per_s: Math.round(ossl.sign), openssl_verify_per_s: Math.round(ossl.verify) };
    if (want('ca.issue.inprocess')) {
      const rate = await inProcess(csrs, 5);
      out.push(result('ca.issue.inprocess', rate, 'certs/s', 'openssl p256 bound 1/(1/sign+1/verify), one core', ossl.bound, extra));
    }
    if (want('ca.issue.api')) {
      const { rate, workers } = await throughApi(csrs, 6);
      out.push(result('ca.issue.api', rate, 'certs/s', `openssl p256 bound x ${workers} cores`, ossl.bound * workers, { ...extra, per_core_bound: Math.round(ossl.bound) }));
    }
    return out;
  },
};
export default bench;
