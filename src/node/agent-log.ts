// The node agent's log: JSON lines in <node-data-dir>/agent.log (0600, served at /logs), and on standard error when run by hand.
import { closeSync } from 'node:fs';
import { pino, type DestinationStream, type Logger, type StreamEntry } from 'pino';
import { openPrivateFile } from '../util/files.js';

export interface AgentLog {
  log: Logger;
  /** Flushes and closes the file. */
  close(): void;
}

/** Never pass key material, tokens or certificates in fields: the file is served to the control plane. */
export function openAgentLog(file: string, o: { stderr?: boolean; level?: string } = {}): AgentLog {
  // Created 0600 before the logger opens it (and tightened if an older one is looser).
  closeSync(openPrivateFile(file));
  const dest = pino.destination({ dest: file, sync: true, append: true });
  const streams: StreamEntry[] = [{ stream: dest as DestinationStream }];
  if (o.stderr) streams.push({ stream: pino.destination({ fd: 2, sync: true }) as DestinationStream });
  const level = o.level ?? process.env.TRUSTPLANE_LOG_LEVEL ?? 'info';
  const log = pino({ name: 'trustplane-node', level, base: { pid: process.pid } }, pino.multistream(streams.map((s) => ({ ...s, level: level as pino.Level }))));
  let closed = false;
  return {
    log,
    close() {
      if (closed) return;
      closed = true;
      try {
        dest.flushSync();
      } catch {
        // Nothing buffered.
      }
      dest.end();
    },
  };
}
