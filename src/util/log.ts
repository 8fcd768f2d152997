// Structured logs: JSON lines (pino) on standard error, one logger per process, children per component.
import { pino, type Logger } from 'pino';

export type { Logger };

/** A process's logger; `level` from TRUSTPLANE_LOG_LEVEL (default info). Never pass key material in fields. */
export function createLogger(name: string): Logger {
  return pino({ name, level: process.env.TRUSTPLANE_LOG_LEVEL ?? 'info', base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
}

/** A logger that drops everything, for tests and libraries called without one. */
export const silentLogger: Logger = pino({ level: 'silent' });
