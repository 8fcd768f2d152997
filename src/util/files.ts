// Files that hold state or keys: owner-only modes (0600 files, 0700 directories) and crash-safe writes, in one place.
import { chmodSync, closeSync, existsSync, fchmodSync, fsyncSync, mkdirSync, openSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/** Every file trustplane writes holds state, keys or something about them (endpoints, PIDs, logs): the owner's only. */
export const PRIVATE_FILE_MODE = 0o600;
export const PRIVATE_DIR_MODE = 0o700;

/**
 * Called first in each process's main: whatever the process, its libraries (SQLite's -wal and -shm) and its children
 * (etcd) create is then the owner's only, whatever mode they ask for. The helpers below do not rely on it.
 */
export function restrictUmask(): void {
  process.umask(0o077);
}

/** Creates `dir` (and missing parents) 0700; an existing one is tightened to 0700. Not for directories the user owns (~/.kube). */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  chmodSync(dir, PRIVATE_DIR_MODE);
}

/** Opens `path` (appending by default) as a 0600 file; one that exists with a looser mode is tightened first. */
export function openPrivateFile(path: string, flags = 'a'): number {
  const fd = openSync(path, flags, PRIVATE_FILE_MODE);
  try {
    fchmodSync(fd, PRIVATE_FILE_MODE);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return fd;
}

/**
 * Before SQLite opens `dbPath`: the database made (empty) as 0600, and an older, looser database and its -wal, -shm
 * and -journal tightened. SQLite creates its -wal and -shm with the database file's own mode, so they follow it.
 */
export function preparePrivateDatabase(dbPath: string): void {
  closeSync(openPrivateFile(dbPath, 'a'));
  for (const suffix of ['-wal', '-shm', '-journal']) if (existsSync(dbPath + suffix)) chmodSync(dbPath + suffix, PRIVATE_FILE_MODE);
}

/** Crash-safe: the file is either its old or its new content, never a torn mix; its directory is made 0700 if missing. */
export function writeFileAtomic(path: string, data: string | Buffer, mode = PRIVATE_FILE_MODE): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  const fd = openSync(tmp, 'w', mode);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}
