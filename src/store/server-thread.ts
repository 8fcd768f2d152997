// The embedded store server on a worker thread of the host process: its SQLite commits (each one waits for an fsync)
// and the server side of every gRPC call run beside the API server and the controllers, not between their requests.
import { Worker } from 'node:worker_threads';
import { TrustplaneError, type Reason } from '../util/errors.js';
import type { RunningStore, StoreServerOptions } from './server/index.js';
import type { ClientSighting } from '../tls/observed-clients.js';

type FromThread =
  | { started: { port: number; host: string; endpoint: string } }
  | { failed: { reason?: Reason; message: string; hint?: string } }
  | { closed: true }
  | { tlsSet: number }
  | { tlsFailed: number; message: string }
  | { observed: number; clients: ClientSighting[] };

/** startStoreServer, on its own thread. Options must be plain data (no clock): they are copied to the thread. */
export function startStoreServerThread(o: StoreServerOptions): Promise<RunningStore> {
  const worker = new Worker(new URL('./server-thread-main.js', import.meta.url), { workerData: o });
  let closing: Promise<void> | undefined;
  let nextId = 0;
  const tlsWaiters = new Map<number, { resolve(): void; reject(e: Error): void }>();
  const observedWaiters = new Map<number, (clients: ClientSighting[]) => void>();
  return new Promise<RunningStore>((resolve, reject) => {
    let started = false;
    worker.on('message', (m: FromThread) => {
      if ('started' in m) {
        started = true;
        resolve({
          ...m.started,
          setTls(tls) {
            const id = ++nextId;
            return new Promise<void>((ok, fail) => {
              tlsWaiters.set(id, { resolve: ok, reject: fail });
              worker.postMessage({ setTls: tls, id });
            });
          },
          observedClients() {
            // A thread that is closing answers no more: nothing was seen, rather than a wait that never ends.
            if (closing) return Promise.resolve([]);
            const id = ++nextId;
            return new Promise<ClientSighting[]>((ok) => {
              observedWaiters.set(id, ok);
              worker.postMessage({ observedClients: id });
            });
          },
          close() {
            closing ??= new Promise<void>((done) => {
              worker.once('exit', () => {
                for (const w of observedWaiters.values()) w([]);
                observedWaiters.clear();
                done();
              });
              worker.postMessage('close');
            });
            return closing;
          },
        });
      } else if ('failed' in m) {
        // The reason and hint the server gave, as if it had failed on this thread.
        reject(m.failed.reason ? new TrustplaneError(m.failed.reason, m.failed.message, m.failed.hint) : new Error(m.failed.message));
        void worker.terminate();
      } else if ('tlsSet' in m) {
        tlsWaiters.get(m.tlsSet)?.resolve();
        tlsWaiters.delete(m.tlsSet);
      } else if ('observed' in m) {
        observedWaiters.get(m.observed)?.(m.clients);
        observedWaiters.delete(m.observed);
      } else if ('tlsFailed' in m) {
        tlsWaiters.get(m.tlsFailed)?.reject(new TrustplaneError('Invalid', `the store cannot use the new certificates: ${m.message}`));
        tlsWaiters.delete(m.tlsFailed);
      }
      // Closed: nothing of the store is left to wait for, whatever handle might still keep the thread's loop alive.
      else if ('closed' in m) void worker.terminate();
    });
    worker.on('error', (e) => {
      if (!started) return reject(e);
      // As when the server ran on the main thread: a store that broke takes the process down rather than leave it storeless.
      throw e;
    });
    worker.on('exit', (code) => {
      if (!started) reject(new Error(`the store thread exited (${code}) before it served`));
      else if (!closing) throw new Error(`the store thread exited unexpectedly (${code})`);
    });
  });
}
