// Worker thread body: parses and verifies CSRs off the CA's main thread. It holds no key; it only reads untrusted input.
import { parentPort } from 'node:worker_threads';
import { parseCsrAsync } from '../pki/index.js';
import { TrustplaneError } from '../util/errors.js';

// parseCsrAsync verifies signatures on libuv's thread pool, so one worker keeps several verifications in flight.
parentPort?.on('message', (msg: { id: number; csrs: Array<string | Uint8Array> }) => {
  void Promise.all(
    msg.csrs.map(async (c) => {
      try {
        return { ok: await parseCsrAsync(typeof c === 'string' ? c : Buffer.from(c)) };
      } catch (e) {
        return { error: { reason: e instanceof TrustplaneError ? e.reason : 'Invalid', message: (e as Error).message, hint: e instanceof TrustplaneError ? e.hint : undefined } };
      }
    }),
  ).then((results) => parentPort!.postMessage({ id: msg.id, results }));
});
