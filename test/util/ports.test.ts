// Ports kept across restarts are first picked below the kernel's ephemeral range, where no outgoing connection takes them.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { ephemeralRange, stablePort } from '../../src/util/ports.js';

test('stablePort: free, below the ephemeral range, and not the same each time', async () => {
  const [low, high] = ephemeralRange();
  assert.ok(low > 10000 && high >= low);
  const ports = new Set<number>();
  for (let i = 0; i < 5; i++) {
    const p = await stablePort('127.0.0.1');
    assert.ok(p >= 10000 && p < low, `${p} is below ${low}`);
    ports.add(p);
    // Free: this process can listen on it.
    const s = createServer();
    await new Promise<void>((resolve, reject) => s.once('error', reject).listen({ host: '127.0.0.1', port: p, exclusive: true }, resolve));
    await new Promise((r) => s.close(r));
  }
  assert.ok(ports.size > 1, 'picked at random');
});
