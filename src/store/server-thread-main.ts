// Main of the store thread (server-thread.ts): starts the server from workerData, closes it when asked, says so.
import { parentPort, workerData } from 'node:worker_threads';
import { TrustplaneError } from '../util/errors.js';
import { startStoreServer, type StoreServerOptions } from './server/index.js';

async function main(): Promise<void> {
  const port = parentPort!;
  let store;
  try {
    store = await startStoreServer(workerData as StoreServerOptions);
  } catch (e) {
    const t = e instanceof TrustplaneError ? e : undefined;
    port.postMessage({ failed: { reason: t?.reason, message: (e as Error)?.message ?? String(e), hint: t?.hint } });
    return;
  }
  port.on('message', (m) => {
    if (m && typeof m === 'object' && 'setTls' in m) {
      void store.setTls(m.setTls).then(
        () => port.postMessage({ tlsSet: m.id }),
        (e: Error) => port.postMessage({ tlsFailed: m.id, message: e.message }),
      );
      return;
    }
    if (m && typeof m === 'object' && 'observedClients' in m) {
      void store.observedClients().then((clients) => port.postMessage({ observed: m.observedClients, clients }));
      return;
    }
    if (m !== 'close') return;
    void store.close().then(() => port.postMessage({ closed: true }));
  });
  port.postMessage({ started: { port: store.port, host: store.host, endpoint: store.endpoint } });
}

void main();
