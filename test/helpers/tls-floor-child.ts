// A trustplane server in a process whose Node.js TLS floor was lowered (NODE_OPTIONS=--tls-min-v1.0): proves the floor is the project's, not Node's.
//
// Driven over IPC by tls-floor.ts: receives a FloorSetup, starts the server through its public start function,
// answers with a FloorReady, and stops (removing everything it made) on 'close' or when the parent goes away.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_MIN_VERSION } from 'node:tls';
import { startTunnelServer } from '../../src/tunnel/index.js';
import { startTestCluster } from '../apiserver/harness.js';
import { makePki, removeDir, startTestStore } from '../store/server/helpers.js';
import { clusterPki } from '../tunnel/helpers.js';
import { tempDir } from './tmp.js';

export type FloorServer = 'apiserver' | 'store' | 'tunnel';

export interface FloorSetup {
  server: FloorServer;
  /** The server's configured floor; absent: the project's default. */
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
}

export interface FloorReady {
  port: number;
  /** tls.DEFAULT_MIN_VERSION in the child: 'TLSv1' shows that Node's own floor really was lowered. */
  nodeDefaultMinVersion: string;
  /** PEM files for openssl s_client: the CA that signed the server, and a client certificate the server accepts. */
  caFile: string;
  certFile: string;
  keyFile: string;
}

async function start(s: FloorSetup): Promise<{ ready: Omit<FloorReady, 'nodeDefaultMinVersion'>; stop(): Promise<void> }> {
  switch (s.server) {
    case 'apiserver': {
      const c = await startTestCluster({ minVersion: s.minVersion });
      return { ready: { port: c.api.port, caFile: c.ca.certFile, certFile: c.admin.certFile, keyFile: c.admin.keyFile }, stop: () => c.stop() };
    }
    case 'store': {
      const pki = makePki();
      const t = await startTestStore({ pki, tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert, minVersion: s.minVersion } });
      return {
        ready: { port: t.server.port, caFile: pki.ca.certFile, certFile: pki.client.certFile, keyFile: pki.client.keyFile },
        async stop() {
          await t.close();
          removeDir(t.dir);
        },
      };
    }
    case 'tunnel': {
      const pki = await clusterPki();
      const serving = await pki.tunnelServing();
      const client = await pki.nodeClient('node-floor');
      const dir = tempDir('tp-tls-floor-');
      const file = (name: string, pem: string) => {
        const p = join(dir.path, name);
        writeFileSync(p, pem, { mode: 0o600 });
        return p;
      };
      const server = await startTunnelServer({ tls: { cert: serving.cert, key: serving.key, clientCa: pki.ca, minVersion: s.minVersion }, log: () => undefined });
      return {
        ready: { port: server.port, caFile: file('ca.crt', pki.ca), certFile: file('node.crt', client.cert), keyFile: file('node.key', client.key) },
        async stop() {
          await server.close();
          dir.remove();
        },
      };
    }
  }
}

async function main() {
  const setup = await new Promise<FloorSetup>((r) => process.once('message', (m) => r(m as FloorSetup)));
  const running = await start(setup);
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= running.stop().then(() => process.exit(0)));
  // A parent that dies without saying so must not leave this server behind.
  process.once('disconnect', stop);
  process.once('message', stop);
  process.send!({ ...running.ready, nodeDefaultMinVersion: DEFAULT_MIN_VERSION } satisfies FloorReady);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
