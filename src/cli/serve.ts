// `trustplane serve`: the control plane host in the foreground (fleet API; per cluster its store, API server, controllers).
import type { Command } from 'commander';
import { runHost } from '../fleet/host.js';
import { parseMinVersion } from '../tls/policy.js';
import { parseDuration } from '../util/duration.js';
import { invalid } from '../util/errors.js';
import { createLogger } from '../util/log.js';
import { parseListen } from './ca.js';
import { dataDirOf, type GlobalOptions } from './context.js';

export function register(program: Command, globals: () => GlobalOptions): void {
  program
    .command('serve')
    .description('run the control plane host in the foreground: the fleet API and every cluster of the data dir (needs the CA service running)')
    .option('--listen <host:port>', 'fleet API address; cluster API servers and stores bind to the same loopback host', '127.0.0.1:0')
    .option('--tls-min-version <v>', 'minimum TLS version on every listener: 1.2 or 1.3', '1.2')
    .option('--ca-wait <seconds>', 'how long to wait for the CA service at start', '30')
    .option('--metrics-port <port>', 'port of the HTTPS Prometheus /metrics listener on the same loopback host, for the fleet admin certificate or the bearer token in <data-dir>/host/metrics-token (0: a free one; its URL is in <data-dir>/host/endpoint.json)', '0')
    .option('--console-port <port>', 'port of the HTTPS web console on the same loopback host, for the fleet admin certificate or a login with the token in <data-dir>/host/metrics-token (default: the port of its last start, kept in <data-dir>/host/console-port, else a free one; 0: a free one)')
    .option('--observed-window <duration>', 'how far back a client seen presenting an old CA generation is listed during a rotation and holds its completion', '10m')
    .option('--lifetime-check-interval <duration>', "how often the lifetime controller looks at every cluster's CAs (starts and completes automatic rotations)", '1m')
    .action(async (o: { listen: string; tlsMinVersion: string; caWait: string; lifetimeCheckInterval: string; metricsPort: string; observedWindow: string; consolePort?: string }) => {
      if (!/^\d+$/.test(o.metricsPort) || Number(o.metricsPort) > 65535) throw invalid(`--metrics-port "${o.metricsPort}" is not a port number`);
      if (o.consolePort !== undefined && (!/^\d+$/.test(o.consolePort) || Number(o.consolePort) > 65535)) throw invalid(`--console-port "${o.consolePort}" is not a port number`, 'give a port from 0 (a free one) to 65535');
      const lifetimeIntervalMs = parseDuration(o.lifetimeCheckInterval, '--lifetime-check-interval') * 1000;
      const observedWindowMs = parseDuration(o.observedWindow, '--observed-window') * 1000;
      const dataDir = dataDirOf(globals());
      const { host, port } = parseListen(o.listen);
      const log = createLogger('trustplane-host');
      const running = await runHost({ dataDir, host, port, minVersion: parseMinVersion(o.tlsMinVersion), log, caWaitMs: Number(o.caWait) * 1000, lifetimeIntervalMs, observedWindowMs, metricsPort: Number(o.metricsPort), consolePort: o.consolePort === undefined ? undefined : Number(o.consolePort) });
      process.stdout.write(`trustplane control plane host listening on ${running.url}, metrics at ${running.metricsUrl}, web console at ${running.consoleUrl} (data dir: ${dataDir})\n`);
      await new Promise<void>((resolve) => {
        const stop = () => {
          process.stdout.write('stopping the control plane host\n');
          void running.stop().then(resolve);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
}
