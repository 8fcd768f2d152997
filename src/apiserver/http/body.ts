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

export function parseJson(body: Buffer, what = "couldn't get version/kind; json parse error"): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw badRequestError(`${what}: ${(e as Error).message}`);
  }
}

/**
 * A body that is an object: JSON, or the protobuf kubectl 1.32 sends for a few typed calls. YAML bodies are accepted
 * only when they are JSON (as kubectl sends server-side apply).
 */
export function decodeObject(body: Buffer, type: string): Record<string, unknown> {
  let v: unknown;
  if (type === 'application/json' || type === '' || type === 'application/yaml' || type === 'application/apply-patch+yaml') {
    if (body.length === 0) throw badRequestError('the request body is empty');
    v = parseJson(body, type.endsWith('yaml') ? "couldn't get version/kind; only JSON-compatible YAML is accepted; parse error" : undefined);
  } else if (type === PROTOBUF) {
    v = decodeKubeProtobuf(body);
  } else {
    throw unsupportedMediaTypeError(type, ['application/json', 'application/yaml', PROTOBUF]);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw badRequestError("couldn't get version/kind; json parse error: the body is not a JSON object");
  return v as Record<string, unknown>;
}
