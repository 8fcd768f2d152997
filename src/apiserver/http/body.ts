// Request bodies: read under a size limit, then decoded by media type (JSON, kubectl's protobuf, patch types).
import type { IncomingMessage } from 'node:http';
import { badRequestError, tooLargeError, unsupportedMediaTypeError } from '../status.js';
import { decodeKubeProtobuf } from './protobuf.js';

/** The largest request body accepted by default: 3 MiB, kube-apiserver's MaxRequestBodyBytes. */
export const DEFAULT_MAX_BODY_BYTES = 3 * 1024 * 1024;
/** How much of an oversized body is read and thrown away so that the client sees the 413 rather than a reset. */
const DRAIN_LIMIT = 64 * 1024 * 1024;

export const PROTOBUF = 'application/vnd.kubernetes.protobuf';
export const PATCH_TYPES = ['application/json-patch+json', 'application/merge-patch+json', 'application/strategic-merge-patch+json', 'application/apply-patch+yaml'] as const;
export type PatchType = (typeof PATCH_TYPES)[number];

export function mediaType(req: IncomingMessage): string {
  return (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
}

/** The whole body, or a 413 once it passes `limit` bytes (the rest is drained, up to a bound, then the socket is cut). */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? NaN);
    let size = 0;
    let over = Number.isFinite(declared) && declared > limit;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) over = true;
      if (over) {
        chunks.length = 0;
        if (size > DRAIN_LIMIT) {
          req.socket.destroy();
          reject(tooLargeError(limit));
        }
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => (over ? reject(tooLargeError(limit)) : resolve(Buffer.concat(chunks))));
    req.on('error', reject);
    req.on('aborted', () => reject(badRequestError('the client closed the request before its body was read')));
  });
}

/**
 * The deepest nesting of objects and arrays a body may have. Deeper bodies are refused before parsing, so that no
 * recursive walk of the body (field validation, the patches, structuredClone, isDeepStrictEqual) can run out of stack
 * on one: with Node's default stack isDeepStrictEqual overflows near 1,250 levels and structuredClone near 1,900
 * (measured), so the bound sits well below both. Go's encoding/json, under kube-apiserver, allows 10,000; no
 * Kubernetes object comes near either.
 */
export const MAX_NESTING_DEPTH = 500;

/** Refuses JSON text nested deeper than `max`; strings are skipped, so brackets inside them do not count. */
export function checkNestingDepth(text: string, max = MAX_NESTING_DEPTH): void {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \\ */) i++;
        else if (d === 0x22) break;
      }
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (++depth > max) throw badRequestError(`the request body is nested more than ${max} levels deep (objects and lists within each other): flatten it`);
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) depth--;
  }
}

export function parseJson(body: Buffer, what = "couldn't get version/kind; json parse error"): unknown {
  const text = body.toString('utf8');
  checkNestingDepth(text);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw badRequestError(`${what}: ${(e as Error).message}`);
  }
}

/**
 * A body that is an object: JSON, or the protobuf kubectl 1.32 sends for a few typed calls. YAML bodies are accepted
 * only when they are JSON (as kubectl sends server-side apply). `kind` names what was expected, in the refusal of a
 * body that is not an object.
 */
export function decodeObject(body: Buffer, type: string, kind = 'object'): Record<string, unknown> {
  let v: unknown;
  if (type === 'application/json' || type === '' || type === 'application/yaml' || type === 'application/apply-patch+yaml') {
    if (body.length === 0) throw badRequestError('the request body is empty');
    v = parseJson(body, type.endsWith('yaml') ? "couldn't get version/kind; only JSON-compatible YAML is accepted; parse error" : undefined);
  } else if (type === PROTOBUF) {
    v = decodeKubeProtobuf(body);
  } else {
    throw unsupportedMediaTypeError(type, ['application/json', 'application/yaml', PROTOBUF]);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw badRequestError(`couldn't get version/kind; json parse error: the body is ${v === null ? 'null' : Array.isArray(v) ? 'a list' : `a ${typeof v}`}, not a JSON ${kind}`);
  }
  return v as Record<string, unknown>;
}
