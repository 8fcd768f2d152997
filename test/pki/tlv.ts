// A lenient TLV tree for tests: take valid DER apart, change one field, put it back together with fixed-up lengths.

export interface TlvNode {
  tag: number;
  /** Contents of a primitive element. */
  content: Buffer;
  /** Children of a constructed element (tag bit 0x20). */
  children?: TlvNode[];
  /** Replaces the computed length bytes on output (to write non-minimal or indefinite forms). */
  lengthBytes?: Buffer;
}

export function parseTlv(buf: Buffer): TlvNode {
  const [n, end] = parseAt(buf, 0);
  if (end !== buf.length) throw new Error('trailing bytes');
  return n;
}

function parseAt(buf: Buffer, pos: number): [TlvNode, number] {
  const tag = buf[pos];
  let len = buf[pos + 1];
  let body = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[body + i];
    body += n;
  }
  const end = body + len;
  const content = buf.subarray(body, end);
  if (tag & 0x20) {
    const children: TlvNode[] = [];
    let p = body;
    while (p < end) {
      const [c, e] = parseAt(buf, p);
      children.push(c);
      p = e;
    }
    return [{ tag, content, children }, end];
  }
  return [{ tag, content }, end];
}

function lengthOf(len: number): Buffer {
  if (len < 0x80) return Buffer.from([len]);
  const bytes: number[] = [];
  while (len > 0) {
    bytes.unshift(len & 0xff);
    len >>= 8;
  }
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export function serializeTlv(n: TlvNode): Buffer {
  const content = n.children ? Buffer.concat(n.children.map(serializeTlv)) : n.content;
  return Buffer.concat([Buffer.from([n.tag]), n.lengthBytes ?? lengthOf(content.length), content]);
}

/** The node at a path of child indexes. */
export function at(root: TlvNode, ...path: number[]): TlvNode {
  let n = root;
  for (const i of path) {
    if (!n.children || !n.children[i]) throw new Error(`no child ${i} on the path ${path.join('.')}`);
    n = n.children[i];
  }
  return n;
}

/** A deep copy, so each mutation starts from the valid original. */
export function clone(n: TlvNode): TlvNode {
  return { tag: n.tag, content: Buffer.from(n.content), children: n.children?.map(clone), lengthBytes: n.lengthBytes };
}

/** Copies `der`, applies `change` to the node at `path`, and re-encodes. */
export function mutate(der: Buffer, path: number[], change: (n: TlvNode) => void): Buffer {
  const root = clone(parseTlv(der));
  change(at(root, ...path));
  return serializeTlv(root);
}
