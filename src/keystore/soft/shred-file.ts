// Removing a key file: overwrite its bytes with random data and sync before unlinking, a best effort against recovery from the disk.
import { randomBytes } from 'node:crypto';
import { open, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';

export async function shredFile(path: string): Promise<void> {
  const { size } = await stat(path);
  const fh = await open(path, 'r+');
  try {
    await fh.write(randomBytes(size), 0, size, 0);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await unlink(path);
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
