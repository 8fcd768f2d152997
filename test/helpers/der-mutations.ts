// Random changes to DER (byte-level and structure-aware), shared by the parser fuzz test and the parser benchmark.
import { type TlvNode, parseTlv, serializeTlv } from '../pki/tlv.js';

const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0x81, 0x82, 0x83, 0x84, 0xff, 0x30, 0x31, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0c, 0x13, 0x16, 0x17, 0x18, 0x1f, 0xa0, 0xa3];

function nodes(n: TlvNode, out: TlvNode[] = []): TlvNode[] {
  out.push(n);
  for (const c of n.children ?? []) nodes(c, out);
  return out;
}

/**
 * A mutator drawing from `rnd` (e.g. a seeded prng): each call makes one random change to a copy of `seed`, byte-level
 * (flip, set, insert, delete, truncate, extend) or structure-aware (a TLV's tag, length or contents).
 */
export function derMutator(rnd: () => number): (seed: Buffer) => Buffer {
  const int = (n: number) => Math.floor(rnd() * n);
  return function mutate(seed: Buffer): Buffer {
    const b = Buffer.from(seed);
    const i = int(b.length);
    switch (int(10)) {
      case 0:
        b[i] ^= 1 << int(8);
        return b;
      case 1:
        b[i] = INTERESTING[int(INTERESTING.length)];
        return b;
      case 2:
        return Buffer.concat([b.subarray(0, i), Buffer.from([int(256)]), b.subarray(i)]);
      case 3:
        return Buffer.concat([b.subarray(0, i), b.subarray(i + 1 + int(4))]);
      case 4:
        return b.subarray(0, i);
      case 5:
        return Buffer.concat([b, Buffer.from([int(256)])]);
      default: {
        // Structure-aware: re-serialised with correct lengths, so the damage is inside one field.
        const root = parseTlv(b);
        const all = nodes(root);
        const n = all[int(all.length)];
        const op = int(5);
        if (op === 0) n.tag = INTERESTING[int(INTERESTING.length)];
        else if (op === 1 && n.content.length) {
          const c = Buffer.from(n.content);
          c[int(c.length)] = rnd() < 0.5 ? int(256) : INTERESTING[int(INTERESTING.length)];
          n.content = c;
          n.children = undefined;
        } else if (op === 2 && n.children?.length) n.children.splice(int(n.children.length), 1);
        else if (op === 3 && n.children?.length) n.children.push(n.children[int(n.children.length)]);
        else if (op === 4) n.lengthBytes = Buffer.from([0x81, Math.max(0, n.content.length + int(3) - 1) & 0xff]);
        else n.content = Buffer.from([...n.content, int(256)]);
        return serializeTlv(root);
      }
    }
  };
}
