// Counting node credentials for metrics: per generation of the newest live certificate, and those with 10 % or less of
// their life left; expired and revoked certificates count for nothing.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { NodeCredential } from '../../src/controllers/node-credentials.js';
import { lifeLeftFraction, summarizeNodeCredentials } from '../../src/fleet/node-credential-summary.js';

const now = new Date('2026-06-01T00:00:00Z');
const at = (hours: number) => new Date(now.getTime() + hours * 3600_000).toISOString();
const cred = (node: string, generation: number, issuedH: number, notAfterH: number, more: Partial<NodeCredential> = {}): NodeCredential => ({
  node, serial: `${node}-${generation}`, generation, issuedAt: at(issuedH), notAfter: at(notAfterH), csr: `csr-${node}`, ...more,
});

describe('node credential summary', () => {
  test('life left as a fraction of not-before to not-after', () => {
    assert.equal(lifeLeftFraction({ issuedAt: at(-90), notAfter: at(10) }, now), 0.1);
    assert.equal(lifeLeftFraction({ issuedAt: at(-1), notAfter: at(-0.5) }, now), 0);
    assert.equal(lifeLeftFraction({ issuedAt: at(1), notAfter: at(1) }, now), 0);
  });

  test('per generation of the newest live certificate; near expiry at 10 % or less', () => {
    const s = summarizeNodeCredentials(
      [
        cred('a', 2, -10, 90), // 90 % left
        cred('b', 1, -95, 5), // 5 % left: near expiry
        cred('c', 1, -90, 10), // exactly 10 %: near expiry
        cred('d', 1, -100, -1), // expired: not counted
        cred('e', 2, -1, 99, { revokedAt: at(-0.5) }), // revoked: not counted
        // Renewed under generation 2: its older generation-1 certificate (near expiry) is not the one that counts.
        cred('f', 2, -1, 99, { earlier: [{ serial: 'f-old', generation: 1, issuedAt: at(-95), notAfter: at(5), csr: 'old' }] }),
      ],
      now,
    );
    assert.deepEqual([...s.byGeneration].sort(), [[1, 2], [2, 2]]);
    assert.equal(s.nearExpiry, 2);
  });
});
