// Writing responses: JSON bodies, Status errors, Warning headers.
import type { ServerResponse } from 'node:http';
import { toStatus } from '../status.js';

/** `pretty` (?pretty=true) indents the JSON, as kube-apiserver does for it. */
export function sendJson(res: ServerResponse, code: number, body: unknown, o: { contentType?: string; warnings?: string[]; pretty?: boolean } = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const text = typeof body === 'string' ? body : o.pretty ? `${JSON.stringify(body, null, 2)}\n` : JSON.stringify(body);
  const headers: Record<string, string | number | string[]> = {
    'Content-Type': o.contentType ?? 'application/json',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-cache, private',
  };
  if (o.warnings?.length) headers.Warning = o.warnings.map((w) => `299 - ${JSON.stringify(w)}`);
  res.writeHead(code, headers);
  res.end(text);
}

export function sendError(res: ServerResponse, e: unknown): void {
  const s = toStatus(e);
  if (s.code === 401) res.setHeader('WWW-Authenticate', 'Bearer realm="trustplane"');
  sendJson(res, s.code, s);
}
