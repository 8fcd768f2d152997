// One process per role and data dir: a PID file claimed at start and released at stop.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { writeFileAtomic } from './files.js';
import { TrustplaneError } from './errors.js';

export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Alive and not a zombie: an orphan's exit may never be reaped where PID 1 does not reap (Linux; elsewhere as isProcessAlive). */
export function isProcessRunning(pid: number): boolean {
  if (!isProcessAlive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ENOENT' || !existsSync('/proc/self');
  }
}

/** Claim `path` for this process; refuses while another live process holds it. A stale file (its process gone) is taken over. */
export function claimPidFile(path: string, what: string): () => void {
  if (existsSync(path)) {
    const other = Number(readFileSync(path, 'utf8'));
    if (other && other !== process.pid && isProcessAlive(other))
      throw new TrustplaneError('Conflict', `${what} is already running (pid ${other}, ${path})`, 'stop it first, or use another --data-dir');
  }
  writeFileAtomic(path, String(process.pid));
  return () => {
    if (existsSync(path) && Number(readFileSync(path, 'utf8')) === process.pid) rmSync(path, { force: true });
  };
}
