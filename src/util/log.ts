// Structured logs: JSON lines (pino) on standard error, one logger per process, children per component.
import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * A process's logger; `level` from TRUSTPLANE_LOG_LEVEL (default info). Never pass key material in fields. Lines are
 * written asynchronously (several per write while one is in flight): a synchronous write per line cost the host a
 * system call per CSR event on its busiest thread. pino flushes what is left when the process exits.
 */
export function createLogger(name: string): Logger {
  return pino({ name, level: process.env.TRUSTPLANE_LOG_LEVEL ?? 'info', base: { pid: process.pid } }, pino.destination({ fd: 2, sync: false }));
}

/** A logger that drops everything, for tests and libraries called without one. */
export const silentLogger: Logger = pino({ level: 'silent' });
