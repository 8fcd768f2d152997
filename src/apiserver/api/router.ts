// Routes one HTTPS request: authenticate, find the resource, authorize, decode, call the registry, answer in Kubernetes JSON.
import type { Agent, IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../../util/clock.js';
import { TrustplaneError } from '../../util/errors.js';
import type { Authenticated, Authenticator } from '../auth/authenticate.js';
import { authorize, type Decision, type RequestAttributes, type Verb } from '../auth/authorize.js';
import { decodeObject, mediaType, parseJson, PATCH_TYPES, readBody, type PatchType } from '../http/body.js';
import { deleteOptions, listOptions, queryBool, queryPretty, queryTimeout, writeOptions, type ListOptions, type WriteOptions } from '../http/query.js';
import { sendError, sendJson } from '../http/respond.js';
import { parseFieldSelector, parseLabelSelector } from '../http/selectors.js';
import { serveWatch } from '../http/watch.js';
import { managerFromUserAgent, type FieldManager } from '../registry/managed-fields.js';
import { parseResourceVersion } from '../registry/object-store.js';
import { badRequestError, forbiddenError, methodNotAllowedError, unauthorizedError, unsupportedMediaTypeError, ApiError } from '../status.js';
import type { KubeObject, UserInfo } from '../types.js';
import type { Adapter, Ctx } from './adapters.js';
import { serveClusterInfo, type ClusterInfo } from './cluster-info.js';
import { nodeProxyTarget, proxyToNode } from './node-proxy.js';
import { aggregatedDiscovery, AGGREGATED_CONTENT_TYPE, legacyApiVersions, legacyGroup, legacyGroupList, resourceList, versionInfo, wantsAggregated } from './discovery.js';
import { validateFields } from './fields.js';
import type { OpenApi } from './openapi.js';
import { jsonPatch, mergePatch, strategicMergePatch } from './patch.js';
import { groupVersion, type ResourceDef } from './resources.js';
import { SCHEMAS } from './schemas.js';
import { toTable, type IncludeObject } from './tables.js';

export interface RouterDeps {
  /** The cluster's name, in logs. */
  cluster: string;
  clock: Clock;
  authenticator: Authenticator;
  adapters: Adapter[];
  openapi: OpenApi;
  maxBodyBytes: number;
  serverAddress(): string;
  /** Registers an open watch so that shutdown can end it; returns its unregistration. */
  trackWatch(end: () => void): () => void;
  /** The anonymous kube-public/cluster-info ConfigMap's content; not served when absent. */
  clusterInfo?: () => ClusterInfo;
  /** Reaches node endpoints through the reverse tunnel, for /api/v1/nodes/NAME/proxy/...; not served when absent. */
  nodeTransport?: () => Agent | undefined;
  /** The unauthenticated TPM attestation endpoint of shielded nodes (tpm-attestation.ts); not served when absent. */
  tpmAttestation?: { serve(req: IncomingMessage, res: ServerResponse, method: string, path: string): boolean };
}

interface Target {
  group: string;
  version: string;
  namespace?: string;
  resource: string;
  name?: string;
  sub?: string;
  /** The deprecated /watch/ form of a path (…/v1/watch/RESOURCE[/NAME]), still served by kube-apiserver and used by older clients (ruby-kubeclient). */
  watch?: boolean;
}

/** Default and upper bound of a watch's life, as kube-apiserver's --min-request-timeout. */
const WATCH_TIMEOUT_SECONDS = 1800;
const TABLE_CONTENT_TYPE = 'application/json;as=Table;v=v1;g=meta.k8s.io';
const notFoundPath = () => new ApiError('NotFound', 'the server could not find the requested resource', {});

/** The request's URL; one that cannot be read is the client's mistake (400), not the server's. */
function requestUrl(raw: string | undefined): URL {
  const u = raw || '/';
  try {
    // An absolute-form target ("https://host/path") is read as it is; anything else is a path, even one starting "//".
    return /^[a-z][a-z0-9+.-]*:\/\//i.test(u) ? new URL(u) : new URL(`https://apiserver.invalid${u.startsWith('/') ? '' : '/'}${u}`);
  } catch {
    throw badRequestError(`the request URL "${u.slice(0, 200)}" is not a valid URL`);
  }
}

/** One path segment, percent-decoded; an invalid escape ("%zz", a broken UTF-8 sequence) is a 400 naming it. */
function decodeSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw badRequestError(`the request path segment "${s.slice(0, 200)}" contains an invalid percent-escape: each "%" must be followed by two hex digits, and the bytes must be UTF-8`);
  }
}

/** As kube-apiserver's rest.IsValidPathSegmentName: a name in a path may not be "." or "..", nor contain "/" or "%". */
function checkPathName(name: string | undefined): void {
  if (name === undefined) return;
  const problems: string[] = [];
  if (name === '.' || name === '..') problems.push(`may not be '${name}'`);
  for (const c of ['/', '%']) if (name.includes(c)) problems.push(`may not contain '${c}'`);
  if (problems.length) throw badRequestError(`Name parameter invalid: ${JSON.stringify(name.slice(0, 253))}: ${problems.join(';')}`);
}

function parseTarget(path: string): Target | undefined {
  const seg = path.split('/').filter(Boolean).map(decodeSegment);
  let group: string;
  let version: string;
  let rest: string[];
  if (seg[0] === 'api' && seg.length >= 3) [group, version, rest] = ['', seg[1], seg.slice(2)];
  else if (seg[0] === 'apis' && seg.length >= 4) [group, version, rest] = [seg[1], seg[2], seg.slice(3)];
  else return undefined;
  const watch = rest[0] === 'watch';
  if (watch) rest = rest.slice(1);
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  if (rest.length === 0 || rest.length > 3 || (watch && rest.length > 2)) return undefined;
  return { group, version, namespace, resource: rest[0], name: rest[1], sub: rest[2], ...(watch ? { watch } : {}) };
}

function wantsTable(accept: string | undefined): boolean {
  return !!accept && accept.split(',').some((p) => /as=Table/.test(p) && /g=meta\.k8s\.io/.test(p));
}

function includeObject(q: URLSearchParams): IncludeObject {
  const v = q.get('includeObject');
  if (v === null || v === '') return 'Metadata';
  if (v === 'None' || v === 'Metadata' || v === 'Object') return v;
  throw badRequestError(`includeObject must be one of None, Metadata, Object, not "${v}"`);
}

/**
 * A body of kind `def`. Without `defaults` (a server-side apply body, a patch's result) kind and apiVersion must be
 * there; with it, missing ones are taken from the path, as kube-apiserver's decoder defaults them. Either way a body
 * that names another kind or group/version is refused with kube-apiserver's words.
 */
function checkKind(obj: Record<string, unknown>, def: ResourceDef, defaults = false): void {
  const want = groupVersion(def);
  if (obj.kind !== undefined && obj.kind !== null && typeof obj.kind !== 'string') throw badRequestError(`${def.kind} in version "${def.version}" cannot be handled as a ${def.kind}: kind: expected string, got ${typeof obj.kind}`);
  if (obj.apiVersion !== undefined && obj.apiVersion !== null && typeof obj.apiVersion !== 'string') {
    throw badRequestError(`${def.kind} in version "${def.version}" cannot be handled as a ${def.kind}: apiVersion: expected string, got ${typeof obj.apiVersion}`);
  }
  if (defaults) {
    if (!obj.kind) obj.kind = def.kind;
    if (!obj.apiVersion) obj.apiVersion = want;
  }
  if (typeof obj.kind !== 'string' || obj.kind === '') {
    throw badRequestError(`Object 'Kind' is missing in '${JSON.stringify(obj).slice(0, 200)}'`);
  }
  if (obj.apiVersion !== want) {
    throw badRequestError(`the API version in the data (${String(obj.apiVersion ?? '')}) does not match the expected API version (${want})`);
  }
  if (obj.kind !== def.kind) throw badRequestError(`the kind in the data (${obj.kind}) does not match the expected kind (${def.kind})`);
  if (obj.metadata === undefined || obj.metadata === null) obj.metadata = {};
}

export function createHandler(d: RouterDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const byResource = new Map(d.adapters.map((a) => [`${a.def.group}/${a.def.version}/${a.def.resource}`, a]));

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = requestUrl(req.url);
    const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, '') : url.pathname;
    const method = req.method ?? 'GET';
    if (method === 'GET' && (path === '/healthz' || path === '/livez' || path === '/readyz')) {
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('ok');
      return;
    }
    if (serveClusterInfo(res, method, path, d.clusterInfo)) return;
    // Before authentication: a shielded node has no credential yet; its TPM is the proof.
    if (d.tpmAttestation?.serve(req, res, method, path)) return;
    const auth = await d.authenticator.authenticate(req);
    if (!auth) {
      // A certificate of a root CA generation that a completed rotation retired is refused with what to do (403, so that
      // kubectl prints the message); any other refusal gets kube-apiserver's plain 401.
      const refused = d.authenticator.certificateRefusal(req);
      if (refused?.retired) {
        // Discovery (public facts) still answers, so that kubectl gets as far as the request it was asked to make and
        // prints the reason it is refused, rather than a discovery failure.
        if (nonResource(req, res, path, method)) return;
        throw new ApiError(
          'Forbidden',
          `the client certificate was issued by a retired generation of cluster ${d.cluster}'s root CA (the credential rotation has completed); get new credentials with \`trustplane clusters get-credentials ${d.cluster}\``,
        );
      }
      throw unauthorizedError();
    }

    if (nonResource(req, res, path, method)) return;
    const proxy = d.nodeTransport && nodeProxyTarget(url.pathname);
    if (proxy) {
      const nodes = byResource.get('/v1/nodes');
      return proxyToNode(req, res, auth.user, proxy, url.search, {
        transport: d.nodeTransport!,
        nodeExists: async (name) => void (await nodes!.get(name)),
        trackStream: d.trackWatch,
      });
    }
    const t = parseTarget(path);
    if (!t) throw notFoundPath();
    if (t.group === '' && t.version === 'v1' && (t.resource === 'pods' || t.resource === 'events') && !t.name) {
      return emptyList(res, auth.user, t, method, url.searchParams);
    }
    if (t.group === 'authentication.k8s.io' && (t.version === 'v1' || t.version === 'v1beta1') && t.resource === 'selfsubjectreviews' && !t.name) {
      return selfSubjectReview(req, res, auth, method, t.version, url.searchParams);
    }
    const a = byResource.get(`${t.group}/${t.version}/${t.resource}`);
    if (!a) throw notFoundPath();
    if (t.sub !== undefined && !a.def.subresources.some((s) => s.name === t.sub)) throw notFoundPath();
    if (a.def.namespaced) {
      if (t.namespace !== undefined && t.namespace !== a.info.namespace) {
        if (method === 'GET' && !t.name) return sendList(req, res, a, [], '', url.searchParams);
        throw new ApiError('NotFound', `namespaces "${t.namespace}" not found`, { name: t.namespace, kind: 'namespaces', group: '' });
      }
      if (t.namespace === undefined && (t.name || method !== 'GET')) throw notFoundPath();
    } else if (t.namespace !== undefined) throw notFoundPath();

    const q = url.searchParams;
    checkPathName(t.name);
    // The deadline of a short request (a watch is a long one and has timeoutSeconds instead): refused when unreadable.
    if (!(method === 'GET' && (t.watch || (!t.name && queryBool(q, 'watch'))))) queryTimeout(q);
    const attrs = (verb: Verb, name = t.name): RequestAttributes => ({
      verb,
      group: t.group,
      resource: t.resource,
      subresource: t.sub,
      name,
      namespace: t.namespace,
    });
    const allowed = (verb: Verb, name = t.name): Decision & { allowed: true } => {
      const dec = authorize(auth.user, attrs(verb, name));
      if (!dec.allowed) throw forbiddenError(auth.user.name, attrs(verb, name), dec.reason);
      return dec;
    };

    if (t.watch) {
      // /watch/RESOURCE is ?watch=true; /watch/RESOURCE/NAME watches that one object (kube-apiserver: a name field selector).
      if (method !== 'GET') throw methodNotAllowedError(method);
      const dec = allowed('watch');
      const lo = listOptions(q, true);
      if (t.name) lo.fieldSelector = [lo.fieldSelector, `metadata.name=${t.name}`].filter(Boolean).join(',');
      return watchList(req, res, a, dec, q, lo);
    }
    if (!t.name) {
      if (method === 'GET') {
        // The verb comes first (authorization precedes the options), read as kube-apiserver's request-info resolver does.
        if (queryBool(q, 'watch')) {
          const dec = allowed('watch');
          return watchList(req, res, a, dec, q, listOptions(q));
        }
        const dec = allowed('list');
        return list(req, res, a, dec, q, listOptions(q));
      }
      if (method === 'POST') {
        const wo = writeOptions(q, 'CreateOptions');
        return create(req, res, a, ctxOf(req, auth, wo, 'Update', ''), q, wo, (name) => allowed('create', name));
      }
      throw methodNotAllowedError(method);
    }
    const name = t.name;
    const sub = t.sub ?? '';
    switch (method) {
      case 'GET': {
        const dec = allowed('get');
        // GetOptions: the object is always read as it is now, but an unreadable resourceVersion is still a 400.
        parseResourceVersion(q.get('resourceVersion') ?? undefined);
        const obj = await readOwn(a, name, dec, () => forbiddenError(auth.user.name, attrs('get')));
        return sendObject(req, res, a, 200, obj, q);
      }
      case 'PUT': {
        allowed('update');
        const wo = writeOptions(q, 'UpdateOptions');
        const obj = await decodeFor(req, a, wo);
        return update(req, res, a, ctxOf(req, auth, wo, 'Update', sub), name, sub, obj.obj, q, obj.warnings);
      }
      case 'PATCH': {
        const dec = allowed('patch');
        return patch(req, res, a, auth, name, sub, dec, q, () => allowed('create'));
      }
      case 'DELETE': {
        const dec = allowed('delete');
        if (sub) throw methodNotAllowedError(method);
        const raw = await readBody(req, d.maxBodyBytes);
        const opts = deleteOptions(q, raw.length ? decodeObject(raw, mediaType(req), 'DeleteOptions') : undefined);
        const ctx: Ctx = { auth, dryRun: opts.dryRun };
        if (dec.filter) await readOwn(a, name, dec, () => forbiddenError(auth.user.name, attrs('delete')));
        const gone = await a.delete(name, opts.preconditions, ctx);
        return sendJson(res, 200, gone, { pretty: queryPretty(q) });
      }
      default:
        throw methodNotAllowedError(method);
    }
  }

  /** Discovery, version, OpenAPI. */
  function nonResource(req: IncomingMessage, res: ServerResponse, path: string, method: string): boolean {
    const seg = path.split('/').filter(Boolean);
    let body: unknown;
    let contentType: string | undefined;
    if (path === '/version') body = versionInfo();
    else if (path === '/api' || path === '/apis') {
      if (wantsAggregated(req.headers.accept)) {
        body = aggregatedDiscovery(path === '/api');
        contentType = AGGREGATED_CONTENT_TYPE;
      } else body = path === '/api' ? legacyApiVersions(d.serverAddress()) : legacyGroupList();
    } else if (seg[0] === 'api' && seg.length === 2) body = resourceList('', seg[1]) ?? notFoundPath();
    else if (seg[0] === 'apis' && seg.length === 2) body = legacyGroup(seg[1]) ?? notFoundPath();
    else if (seg[0] === 'apis' && seg.length === 3) body = resourceList(seg[1], seg[2]) ?? notFoundPath();
    else if (path === '/openapi/v2') {
      if (method !== 'GET') throw methodNotAllowedError(method);
      const doc = d.openapi.v2(req.headers.accept);
      res.writeHead(200, { 'Content-Type': doc.contentType, 'Content-Length': doc.body.length, 'Cache-Control': 'no-cache, private', ETag: `"${doc.etag}"` });
      res.end(doc.body);
      return true;
    } else if (path === '/openapi/v3') body = d.openapi.root();
    else if (seg[0] === 'openapi' && seg[1] === 'v3') body = d.openapi.document(seg.slice(2).join('/'))?.body ?? notFoundPath();
    else if (seg[0] === 'openapi') body = notFoundPath();
    else return false;
    if (method !== 'GET') throw methodNotAllowedError(method);
    if (body instanceof ApiError) throw body;
    sendJson(res, 200, body, { contentType });
    return true;
  }

  /** A get that, for users who may only see their own objects, refuses others' and missing ones alike. */
  async function readOwn(a: Adapter, name: string, dec: Decision & { allowed: true }, refuse: () => TrustplaneError): Promise<KubeObject> {
    let obj: KubeObject;
    try {
      obj = await a.get(name);
    } catch (e) {
      if (dec.filter && e instanceof TrustplaneError && e.reason === 'NotFound') throw refuse();
      throw e;
    }
    if (dec.filter && !dec.filter(obj)) throw refuse();
    return obj;
  }

  function selectors(a: Adapter, dec: Decision & { allowed: true }, lo: ListOptions): (o: KubeObject) => boolean {
    const labels = parseLabelSelector(lo.labelSelector);
    const fields = parseFieldSelector(lo.fieldSelector, a.fieldOf, a.fields);
    return (o) => (!dec.filter || dec.filter(o)) && labels(o.metadata.labels) && fields(o);
  }

  function sendObject(req: IncomingMessage, res: ServerResponse, a: Adapter, code: number, obj: KubeObject, q: URLSearchParams, warnings?: string[]): void {
    const pretty = queryPretty(q);
    if (wantsTable(req.headers.accept) && a.def.printer) {
      const table = toTable(a.def.printer, [obj], { clock: d.clock, include: includeObject(q), resourceVersion: obj.metadata.resourceVersion });
      return sendJson(res, code, table, { contentType: TABLE_CONTENT_TYPE, warnings, pretty });
    }
    sendJson(res, code, obj, { warnings, pretty });
  }

  function sendList(req: IncomingMessage, res: ServerResponse, a: Adapter, items: KubeObject[], rv: string, q: URLSearchParams): void {
    const pretty = queryPretty(q);
    if (wantsTable(req.headers.accept) && a.def.printer) {
      return sendJson(res, 200, toTable(a.def.printer, items, { clock: d.clock, include: includeObject(q), resourceVersion: rv }), { contentType: TABLE_CONTENT_TYPE, pretty });
    }
    sendJson(res, 200, { kind: `${a.def.kind}List`, apiVersion: groupVersion(a.def), metadata: { resourceVersion: rv }, items }, { pretty });
  }

  async function list(req: IncomingMessage, res: ServerResponse, a: Adapter, dec: Decision & { allowed: true }, q: URLSearchParams, lo: ListOptions): Promise<void> {
    const match = selectors(a, dec, lo);
    const rv = parseResourceVersion(lo.resourceVersion);
    // Exact: the list as it was at that revision (410 once compacted). Otherwise the latest, which is never older than asked.
    const r = await a.list(lo.resourceVersionMatch === 'Exact' ? rv : undefined);
    sendList(req, res, a, r.items.filter(match), r.resourceVersion, q);
  }

  async function watchList(req: IncomingMessage, res: ServerResponse, a: Adapter, dec: Decision & { allowed: true }, q: URLSearchParams, lo: ListOptions): Promise<void> {
    const match = selectors(a, dec, lo);
    const rv = parseResourceVersion(lo.resourceVersion);
    const asTable = wantsTable(req.headers.accept) && a.def.printer;
    const include = includeObject(q);
    const t = lo.timeoutSeconds;
    // Without sendInitialEvents, a watch from no revision (or "0") starts with the current objects, as kube-apiserver's.
    const initial = lo.sendInitialEvents ?? (rv === undefined || rv === 0n);
    await serveWatch(req, res, {
      start: (after, cb) => a.watch(after, cb),
      initial: initial
        ? async () => {
            const r = await a.list();
            return { items: r.items, revision: BigInt(r.resourceVersion) };
          }
        : undefined,
      after: rv === 0n ? undefined : rv,
      // The WatchList protocol (client-go's watch-list): a bookmark marks the end of the initial objects.
      initialEventsEnd: lo.sendInitialEvents
        ? (revision) => ({ kind: a.def.kind, apiVersion: groupVersion(a.def), metadata: { resourceVersion: revision.toString(), annotations: { 'k8s.io/initial-events-end': 'true' } } })
        : undefined,
      filter: match,
      render: (obj, first) => (asTable ? toTable(a.def.printer!, [obj], { clock: d.clock, include, resourceVersion: obj.metadata.resourceVersion, noHeaders: !first }) : obj),
      timeoutSeconds: t !== undefined && t > 0n ? Number(t < BigInt(WATCH_TIMEOUT_SECONDS) ? t : BigInt(WATCH_TIMEOUT_SECONDS)) : WATCH_TIMEOUT_SECONDS,
      track: d.trackWatch,
    });
  }

  /** Who writes, for managedFields: the fieldManager parameter, else the User-Agent's product, as kube-apiserver. */
  function ctxOf(req: IncomingMessage, auth: Authenticated, wo: WriteOptions, operation: FieldManager['operation'], sub: string, applied?: Record<string, unknown>): Ctx {
    const manager = wo.fieldManager || managerFromUserAgent(req.headers['user-agent']);
    return { auth, dryRun: wo.dryRun, ...(manager ? { manager: { manager, operation, ...(sub ? { subresource: sub } : {}), ...(applied ? { applied } : {}) } } : {}) };
  }

  /** A body for `a`: decoded, of the right kind (defaulted from the path), unknown fields judged by fieldValidation. */
  async function decodeFor(req: IncomingMessage, a: Adapter, wo: WriteOptions): Promise<{ obj: KubeObject; warnings: string[] }> {
    const body = await readBody(req, d.maxBodyBytes);
    const obj = decodeObject(body, mediaType(req));
    checkKind(obj, a.def, true);
    const warnings = validateFields(obj, a.def.schema!, a.def.kind, wo.fieldValidation);
    return { obj: obj as KubeObject, warnings };
  }

  async function create(
    req: IncomingMessage,
    res: ServerResponse,
    a: Adapter,
    ctx: Ctx,
    q: URLSearchParams,
    wo: WriteOptions,
    allow: (name: string | undefined) => unknown,
  ): Promise<void> {
    const { obj, warnings } = await decodeFor(req, a, wo);
    return createDecoded(req, res, a, ctx, obj, q, warnings, allow);
  }

  async function createDecoded(
    req: IncomingMessage,
    res: ServerResponse,
    a: Adapter,
    ctx: Ctx,
    obj: KubeObject,
    q: URLSearchParams,
    warnings: string[],
    allow: (name: string | undefined) => unknown,
  ): Promise<void> {
    allow(typeof obj.metadata.name === 'string' && obj.metadata.name ? obj.metadata.name : undefined);
    if (a.info.namespace && obj.metadata.namespace && obj.metadata.namespace !== a.info.namespace) {
      throw badRequestError(`the namespace of the provided object (${obj.metadata.namespace}) does not match the namespace sent on the request (${a.info.namespace})`);
    }
    const created = await a.create(obj, ctx);
    sendObject(req, res, a, 201, created, q, warnings);
  }

  async function update(req: IncomingMessage, res: ServerResponse, a: Adapter, ctx: Ctx, name: string, sub: string, obj: KubeObject, q: URLSearchParams, warnings: string[]): Promise<void> {
    if (obj.metadata.name && obj.metadata.name !== name) {
      throw badRequestError(`the name of the object (${obj.metadata.name}) does not match the name on the URL (${name})`);
    }
    obj.metadata.name = name;
    const updated = await a.update(obj, sub, ctx);
    sendObject(req, res, a, 200, updated, q, warnings);
  }

  async function patch(
    req: IncomingMessage,
    res: ServerResponse,
    a: Adapter,
    auth: Authenticated,
    name: string,
    sub: string,
    dec: Decision & { allowed: true },
    q: URLSearchParams,
    allowCreate: () => unknown,
  ): Promise<void> {
    const type = mediaType(req) as PatchType;
    if (!PATCH_TYPES.includes(type)) throw unsupportedMediaTypeError(type, [...PATCH_TYPES]);
    const apply = type === 'application/apply-patch+yaml';
    const wo = writeOptions(q, 'PatchOptions', apply);
    const mode = wo.fieldValidation;
    const raw = await readBody(req, d.maxBodyBytes);
    const body = apply ? decodeObject(raw, type) : parseJson(raw);
    if (apply) {
      checkKind(body as Record<string, unknown>, a.def);
      const meta = (body as KubeObject).metadata;
      if (meta !== undefined && meta !== null && (typeof meta !== 'object' || Array.isArray(meta))) throw badRequestError('metadata: expected an object');
      const bodyName = meta?.name;
      if (bodyName && bodyName !== name) throw badRequestError(`the name of the object (${String(bodyName)}) does not match the name on the URL (${name})`);
    }
    const ctx = ctxOf(req, auth, wo, apply ? 'Apply' : 'Update', sub, apply ? (body as Record<string, unknown>) : undefined);
    const schema = SCHEMAS[a.def.schema!];
    const meta = (body as { metadata?: unknown } | null)?.metadata;
    const givenRv = typeof meta === 'object' && meta !== null ? (meta as { resourceVersion?: unknown }).resourceVersion : undefined;
    if (givenRv !== undefined && typeof givenRv !== 'string') throw badRequestError('metadata.resourceVersion: expected a string');
    for (let attempt = 0; ; attempt++) {
      let cur: KubeObject;
      try {
        cur = await a.get(name);
      } catch (e) {
        if (apply && sub === '' && e instanceof TrustplaneError && e.reason === 'NotFound') {
          // Server-side apply creates what does not exist yet.
          const obj = structuredClone(body) as KubeObject;
          obj.metadata.name = name;
          const warnings = validateFields(obj, a.def.schema!, a.def.kind, mode);
          return createDecoded(req, res, a, ctx, obj, q, warnings, () => allowCreate());
        }
        if (dec.filter && e instanceof TrustplaneError && e.reason === 'NotFound') throw forbiddenError(auth.user.name, { verb: 'patch', group: a.def.group, resource: a.def.resource, name });
        throw e;
      }
      if (dec.filter && !dec.filter(cur)) throw forbiddenError(auth.user.name, { verb: 'patch', group: a.def.group, resource: a.def.resource, name });
      let next: unknown;
      switch (type) {
        case 'application/json-patch+json':
          next = jsonPatch(cur, body);
          break;
        case 'application/merge-patch+json':
          next = mergePatch(cur, body);
          break;
        default:
          next = strategicMergePatch(cur, body, schema);
      }
      if (typeof next !== 'object' || next === null || Array.isArray(next)) throw badRequestError('the patch does not leave an object');
      const obj = next as KubeObject;
      checkKind(obj, a.def);
      if (typeof obj.metadata !== 'object' || Array.isArray(obj.metadata)) throw badRequestError('the patch leaves metadata that is not an object');
      const warnings = validateFields(obj, a.def.schema!, a.def.kind, mode);
      if (obj.metadata.name !== name) throw badRequestError(`the name of the object (${String(obj.metadata.name)}) does not match the name on the URL (${name})`);
      obj.metadata.resourceVersion = givenRv ?? cur.metadata.resourceVersion;
      try {
        const updated = await a.update(obj, sub, ctx);
        return sendObject(req, res, a, 200, updated, q, warnings);
      } catch (e) {
        // The patch did not ask for a version: apply it again to the newer object, as kube-apiserver does.
        if (givenRv === undefined && attempt < 5 && e instanceof TrustplaneError && e.reason === 'Conflict') continue;
        throw e;
      }
    }
  }

  function emptyList(res: ServerResponse, user: UserInfo, t: Target, method: string, q: URLSearchParams): void {
    if (method !== 'GET') throw methodNotAllowedError(method);
    listOptions(q);
    const dec = authorize(user, { verb: 'list', group: '', resource: t.resource, namespace: t.namespace });
    if (!dec.allowed) throw forbiddenError(user.name, { verb: 'list', group: '', resource: t.resource, namespace: t.namespace }, dec.reason);
    // No workloads run through this API server: nothing is scheduled on any node, nothing is recorded as an event.
    sendJson(res, 200, { kind: t.resource === 'pods' ? 'PodList' : 'EventList', apiVersion: 'v1', metadata: { resourceVersion: '' }, items: [] });
  }

  async function selfSubjectReview(req: IncomingMessage, res: ServerResponse, auth: Authenticated, method: string, version: string, q: URLSearchParams): Promise<void> {
    if (method !== 'POST') throw methodNotAllowedError(method);
    writeOptions(q, 'CreateOptions');
    const body = await readBody(req, d.maxBodyBytes);
    if (body.length) decodeObject(body, mediaType(req));
    const u = auth.user;
    sendJson(res, 201, {
      kind: 'SelfSubjectReview',
      apiVersion: `authentication.k8s.io/${version}`,
      metadata: { creationTimestamp: null },
      status: { userInfo: { username: u.name, ...(u.uid ? { uid: u.uid } : {}), groups: u.groups, ...(u.extra ? { extra: u.extra } : {}) } },
    });
  }

  return (req, res) => {
    handle(req, res).catch((e) => {
      if (!(e instanceof TrustplaneError)) process.emitWarning(`apiserver ${d.cluster}: ${req.method} ${req.url}: ${(e as Error)?.stack ?? e}`);
      sendError(res, e);
    });
  };
}

