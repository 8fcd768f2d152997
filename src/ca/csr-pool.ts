// A pool of worker threads that parse and verify CSRs, so the CA's main thread spends its time on policy and signing.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { ParsedCsr } from '../pki/types.js';
import { TrustplaneError, isReason } from '../util/errors.js';

type Outcome = { ok: ParsedCsr } | { error: { reason: string; message: string; hint?: string } };

const asBuffer = (v: unknown): Buffer => (v instanceof Uint8Array ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : (v as Buffer));

/** Structured clone turns Buffers into Uint8Arrays; give them back their Buffer face. */
function revive(p: ParsedCsr): ParsedCsr {
  return {
    ...p,
    der: asBuffer(p.der),
    publicKey: asBuffer(p.publicKey),
    ...(p.subjectDer ? { subjectDer: asBuffer(p.subjectDer) } : {}),
    extensions: p.extensions.map((e) => ({ ...e, value: asBuffer(e.value) })),
  };
}

export class CsrPool {
  private readonly workers: Worker[] = [];
  private readonly waiting = new Map<number, (r: Outcome[]) => void>();
  private nextId = 1;
  private rr = 0;

  constructor(size = Math.max(1, availableParallelism() - 1)) {
    const file = new URL('./csr-worker.js', import.meta.url);
    for (let i = 0; i < size; i++) {
      const w = new Worker(file);
      w.on('message', (m: { id: number; results: Outcome[] }) => {
        const done = this.waiting.get(m.id);
        this.waiting.delete(m.id);
        done?.(m.results);
      });
      w.on('error', () => undefined);
      w.unref();
      this.workers.push(w);
    }
  }

  /** Parse and verify many CSRs; each entry is a ParsedCsr or the TrustplaneError it would have thrown. */
  async parseMany(csrs: Array<string | Buffer>): Promise<Array<ParsedCsr | TrustplaneError>> {
    const id = this.nextId++;
    const w = this.workers[this.rr++ % this.workers.length];
    const results = await new Promise<Outcome[]>((resolve) => {
      this.waiting.set(id, resolve);
      w.ref();
      w.postMessage({ id, csrs });
    });
    if (this.waiting.size === 0) for (const x of this.workers) x.unref();
    return results.map((r) => ('ok' in r ? revive(r.ok) : new TrustplaneError(isReason(r.error.reason) ? r.error.reason : 'Invalid', r.error.message, r.error.hint)));
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
