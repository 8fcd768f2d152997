// Human durations on the command line ("10y", "30d", "12h", "90m", "600s") to seconds, and back.
import { invalid } from './errors.js';

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 7 * 86400, y: 365 * 86400 };

export function parseDuration(text: string, what: string): number {
  const m = /^(\d+)([smhdwy])$/.exec(text.trim());
  if (!m) throw invalid(`${what} "${text}" is not a duration`, 'write a whole number and a unit: s, m, h, d, w or y (e.g. 10y, 30d, 12h)');
  return Number(m[1]) * UNITS[m[2]];
}

export function formatDuration(seconds: number): string {
  const neg = seconds < 0;
  let s = Math.abs(Math.round(seconds));
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  const out = d >= 365 ? `${Math.floor(d / 365)}y${d % 365}d` : d > 0 ? `${d}d${h}h` : h > 0 ? `${h}h${m}m` : `${m}m${s - m * 60}s`;
  return neg ? `-${out}` : out;
}
