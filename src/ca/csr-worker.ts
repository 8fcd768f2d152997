// Worker thread body: parses and verifies CSRs off the CA's main thread. It holds no key; it only reads untrusted input.
import { parentPort } from 'node:worker_threads';
import { parseCsr } from '../pki/index.js';
import { TrustplaneError } from '../util/errors.js';

parentPort?.on('message', (msg: { id: number; csrs: Array<string | Uint8Array> }) => {
  const results = msg.csrs.map((c) => {
    try {
      return { ok: parseCsr(typeof c === 'string' ? c : Buffer.from(c)) };
    } catch (e) {
      return { error: { reason: e instanceof TrustplaneError ? e.reason : 'Invalid', message: (e as Error).message, hint: e instanceof TrustplaneError ? e.hint : undefined } };
    }
  });
  parentPort!.postMessage({ id: msg.id, results });
});
