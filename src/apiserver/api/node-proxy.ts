// /api/v1/nodes/NAME/proxy/PATH, as in Kubernetes: the API server calls the node endpoint for an authorized caller.
// The call goes out through the reverse tunnel (the transport is an https.Agent that dials node names through it), so
// nothing here ever dials a node's address; TLS runs end to end between this process and the node endpoint.
import type { Agent, IncomingMessage as ClientResponse } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { request } from 'node:https';
import { TrustplaneError } from '../../util/errors.js';
import { authorize, type Verb } from '../auth/authorize.js';
import { forbiddenError, methodNotAllowedError } from '../status.js';
import type { UserInfo } from '../types.js';

/** Matches /api/v1/nodes/NAME/proxy and /api/v1/nodes/NAME/proxy/REST; gives the node name and the path on the node. */
export function nodeProxyTarget(pathname: string): { node: string; path: string } | undefined {
  const m = /^\/api\/v1\/nodes\/([^/]+)\/proxy(\/.*)?$/.exec(pathname);
  if (!m) return undefined;
  let node: string;
  try {
    node = decodeURIComponent(m[1]);
  } catch {
    return undefined;
  }
  return { node, path: m[2] ?? '/' };
}

const VERBS: Record<string, Verb> = { GET: 'get', HEAD: 'get', POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' };
/** Response headers passed back to the caller; the rest (connection handling, the node's own cookies) stay behind. */
const PASS_HEADERS = ['content-type', 'content-length', 'cache-control', 'x-content-type-options'];

export interface NodeProxyDeps {
  /** The https.Agent that reaches node endpoints through the tunnel; undefined while the tunnel is not up. */
  transport(): Agent | undefined;
  /** Throws NotFound when the Node object does not exist. */
  nodeExists(name: string): Promise<void>;
  trackStream(end: () => void): () => void;
}

export async function proxyToNode(
  req: IncomingMessage,
  res: ServerResponse,
  user: UserInfo,
  target: { node: string; path: string },
  search: string,
  d: NodeProxyDeps,
): Promise<void> {
  const method = req.method ?? 'GET';
  const verb = VERBS[method];
  if (!verb) throw methodNotAllowedError(method);
  const attrs = { verb, group: '', resource: 'nodes', subresource: 'proxy', name: target.node };
  const dec = authorize(user, attrs);
  if (!dec.allowed) throw forbiddenError(user.name, attrs, dec.reason);
  await d.nodeExists(target.node);
  const agent = d.transport();
  if (!agent) throw new TrustplaneError('Unavailable', `node ${target.node} cannot be reached: this API server has no tunnel server yet`, 'retry in a moment');

  // A GET or HEAD has no body, and one that fails on a kept-alive connection the node (or a tunnel being replaced) closed
  // as it went out is sent once more on a fresh one, as HTTP clients do: the caller never sees that race.
  const idempotent = method === 'GET' || method === 'HEAD';
  const send = (retried: boolean) =>
    new Promise<ClientResponse>((resolve, reject) => {
      const out = request(
        {
          host: target.node,
          path: target.path + search,
          method,
          agent,
          headers: { accept: req.headers.accept ?? '*/*', ...(req.headers['content-type'] ? { 'content-type': req.headers['content-type'] } : {}) },
        },
        resolve,
      );
      out.on('error', (e: NodeJS.ErrnoException) => {
        if (idempotent && !retried && out.reusedSocket && (e.code === 'ECONNRESET' || e.code === 'EPIPE')) return resolve(send(true));
        reject(
          e instanceof TrustplaneError
            ? e
            : new TrustplaneError('Unavailable', `node ${target.node} did not answer through the tunnel: ${e.message}`, `check the node agent on ${target.node}`),
        );
      });
      if (idempotent) out.end();
      else req.pipe(out);
    });
  const upstream = await send(false);

  const headers: Record<string, string> = {};
  for (const h of PASS_HEADERS) {
    const v = upstream.headers[h];
    if (typeof v === 'string') headers[h] = v;
  }
  res.writeHead(upstream.statusCode ?? 502, headers);
  // Followed logs stream until either side ends: the caller going away ends the node's stream too, and so does shutdown.
  const end = () => {
    upstream.destroy();
    res.end();
  };
  const untrack = d.trackStream(end);
  res.on('close', () => {
    untrack();
    upstream.destroy();
  });
  upstream.on('error', () => res.destroy());
  upstream.pipe(res);
  res.flushHeaders();
}
