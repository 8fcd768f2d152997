// The embedded store as its own process for the store benchmark, as it runs in production (`trustplane store serve`):
// one SQLite file, mutual TLS with certificates the parent made. Started by store-process.ts, never by hand.
//
//   node dist/bench/store-server-child.js '{"dbPath":..,"certFile":..,"keyFile":..,"caFile":..,"synchronous":"FULL"}'
//
// Prints one JSON line {"endpoint":"https://127.0.0.1:PORT"} once it listens; stops on SIGTERM/SIGINT or when its
// parent goes away (stdin closes), so a crashed benchmark leaves no server behind.
import { readFileSync } from 'node:fs';
import { startStoreServer } from '../src/store/server/index.js';

interface ChildConfig {
  dbPath: string;
  certFile: string;
  keyFile: string;
  caFile: string;
  synchronous?: 'FULL' | 'NORMAL';
}

async function main() {
  const c = JSON.parse(process.argv[2] ?? '') as ChildConfig;
  const server = await startStoreServer({
    dbPath: c.dbPath,
    host: '127.0.0.1',
    port: 0,
    tls: { cert: readFileSync(c.certFile, 'utf8'), key: readFileSync(c.keyFile, 'utf8'), ca: readFileSync(c.caFile, 'utf8') },
    synchronous: c.synchronous ?? 'FULL',
  });
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    const force = setTimeout(() => process.exit(1), 5000);
    force.unref();
    void server.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
  process.stdout.write(JSON.stringify({ endpoint: server.endpoint }) + '\n');
}

main().catch((e) => {
  process.stderr.write(`store bench child: ${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(1);
});
