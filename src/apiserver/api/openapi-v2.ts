// OpenAPI v2 (/openapi/v2): the swagger 2.0 document of the served resources, as JSON and as the gnostic protobuf kubectl before 1.29 asks for.
import { encodeField } from '../http/protobuf.js';
import { KUBE_VERSION } from './discovery.js';
import { groupVersion, RESOURCES, type ResourceDef } from './resources.js';
import { closure, SCHEMAS, type Schema } from './schemas.js';

/** What kubectl 1.27/1.28 put in Accept for /openapi/v2 (the "@" form), or the form without "@". */
export const OPENAPI_V2_PROTOBUF_ACCEPT = ['application/com.github.proto-openapi.spec.v2@v1.0+protobuf', 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf'];
/** The Content-Type kube-openapi answers either with: Go's mime parser refuses the "@" form in a reply. */
export const OPENAPI_V2_PROTOBUF = 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf';

type Json = Record<string, unknown>;

const META = 'io.k8s.apimachinery.pkg.apis.meta.v1';
const v2ref = (name: string) => ({ $ref: `#/definitions/${name}` });

/** A v3 component schema in v2 terms: the same JSON schema with its references under #/definitions/. */
function toV2(s: unknown): unknown {
  if (Array.isArray(s)) return s.map(toV2);
  if (typeof s !== 'object' || s === null) return s;
  const out: Json = {};
  for (const [k, v] of Object.entries(s)) out[k] = k === '$ref' ? String(v).replace('#/components/schemas/', '#/definitions/') : toV2(v);
  return out;
}

const query = (name: string, description: string, type = 'string') => ({ name, in: 'query', description, type, uniqueItems: true });
const DRY_RUN = query('dryRun', 'When present, modifications are not persisted. Valid value: All.');
const FIELD_MANAGER = query('fieldManager', 'Name of the actor making these changes.');
const FIELD_VALIDATION = query('fieldValidation', 'How unknown and duplicate fields are treated: Ignore, Warn (default) or Strict.');
const LIST = ['labelSelector', 'fieldSelector', 'resourceVersion', 'resourceVersionMatch', 'continue'].map((n) => query(n, `The ${n} of the list or watch.`))
  .concat([query('watch', 'Watch for changes.', 'boolean'), query('allowWatchBookmarks', 'Bookmarks may be sent.', 'boolean'), query('sendInitialEvents', 'Current objects first, then a bookmark.', 'boolean')])
  .concat([query('timeoutSeconds', 'Time limit of a list or watch call.', 'integer'), query('limit', 'Accepted; every matching object is returned in one page.', 'integer')]);

function paths(r: ResourceDef): Record<string, Json> {
  const gvk = { group: r.group, version: r.version, kind: r.kind };
  const kind = v2ref(r.schema!);
  const list = v2ref(r.schema!.replace(/\.([A-Za-z]+)$/, '.$1List'));
  const base = `/${r.group ? `apis/${r.group}` : 'api'}/${r.version}${r.namespaced ? '/namespaces/{namespace}' : ''}/${r.resource}`;
  const ns = r.namespaced ? [{ name: 'namespace', in: 'path', required: true, type: 'string', uniqueItems: true, description: 'object name and auth scope' }] : [];
  const body = { name: 'body', in: 'body', required: true, schema: kind };
  const ok = (schema: Json) => ({ '200': { description: 'OK', schema } });
  const op = (action: string, id: string, extra: Json) => ({
    description: `${action} ${r.kind}`,
    consumes: ['*/*'],
    produces: ['application/json', 'application/yaml', 'application/vnd.kubernetes.protobuf'],
    schemes: ['https'],
    tags: [groupVersion(r).replace(/[./]/g, '_')],
    operationId: id,
    'x-kubernetes-action': action,
    'x-kubernetes-group-version-kind': gvk,
    ...extra,
  });
  const out: Record<string, Json> = {};
  const collection: Json = { parameters: [...ns, query('pretty', 'If true, output is pretty printed.')] };
  if (r.verbs.includes('list')) collection.get = op('list', `list${r.kind}`, { parameters: LIST, responses: ok(list) });
  if (r.verbs.includes('create')) collection.post = op('post', `create${r.kind}`, { parameters: [body, DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION], responses: { ...ok(kind), '201': { description: 'Created', schema: kind } } });
  out[base] = collection;
  if (!r.verbs.includes('get')) return out;
  const item = (sub: string) => {
    const S = sub ? sub[0].toUpperCase() + sub.slice(1) : '';
    return {
      parameters: [{ name: 'name', in: 'path', required: true, type: 'string', uniqueItems: true, description: `name of the ${r.kind}` }, ...ns, query('pretty', 'If true, output is pretty printed.')],
      get: op('get', `read${r.kind}${S}`, { responses: ok(kind) }),
      put: op('put', `replace${r.kind}${S}`, { parameters: [body, DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION], responses: ok(kind) }),
      patch: op('patch', `patch${r.kind}${S}`, {
        consumes: ['application/json-patch+json', 'application/merge-patch+json', 'application/strategic-merge-patch+json', 'application/apply-patch+yaml'],
        parameters: [{ name: 'body', in: 'body', required: true, schema: v2ref(`${META}.Patch`) }, DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION, query('force', 'Force apply requests.', 'boolean')],
        responses: ok(kind),
      }),
      ...(sub
        ? {}
        : {
            delete: op('delete', `delete${r.kind}`, {
              parameters: [{ name: 'body', in: 'body', schema: v2ref(`${META}.DeleteOptions`) }, DRY_RUN, query('gracePeriodSeconds', 'Ignored: deletion is immediate.', 'integer'), query('propagationPolicy', 'Foreground, Background or Orphan.')],
              responses: ok(v2ref(`${META}.Status`)),
            }),
          }),
    };
  };
  out[`${base}/{name}`] = item('');
  for (const s of r.subresources) out[`${base}/{name}/${s.name}`] = item(s.name);
  return out;
}

/** The swagger 2.0 document: every served resource's paths and the definitions they refer to. */
export function swaggerDocument(): Json {
  const rs = RESOURCES.filter((r) => r.schema);
  const p: Record<string, Json> = {};
  for (const r of rs) Object.assign(p, paths(r));
  const names = rs.flatMap((r) => [r.schema!, r.schema!.replace(/\.([A-Za-z]+)$/, '.$1List')]).concat([`${META}.Status`, `${META}.DeleteOptions`]);
  const definitions: Json = {};
  const all = closure(names.filter((n) => SCHEMAS[n]));
  for (const n of Object.keys(all).sort()) definitions[n] = toV2(all[n]);
  definitions[`${META}.Patch`] = { type: 'object', description: 'A patch body; its form is given by the Content-Type.' };
  return { swagger: '2.0', info: { title: 'Kubernetes (trustplane)', version: KUBE_VERSION.gitVersion }, paths: p, definitions };
}

// The gnostic openapi_v2 messages (github.com/google/gnostic openapiv2/OpenAPIv2.proto), only the fields written here.

const msg = (parts: Buffer[]) => Buffer.concat(parts);
const str = (num: number, v: unknown) => (typeof v === 'string' ? [encodeField(num, v)] : []);
const strs = (num: number, v: unknown) => (Array.isArray(v) ? v.filter((x) => typeof x === 'string').map((x) => encodeField(num, x)) : []);
const bool = (num: number, v: unknown) => (v === true ? [encodeField(num, 1)] : []);
const sub = (num: number, b: Buffer) => encodeField(num, b);

/** NamedAny{name, Any{yaml}}: a vendor extension, its value as YAML (JSON is YAML), as kube-openapi reads it. */
function vendorExtensions(num: number, o: Json): Buffer[] {
  return Object.entries(o)
    .filter(([k]) => k.startsWith('x-'))
    .map(([k, v]) => sub(num, msg([encodeField(1, k), sub(2, msg([encodeField(2, `${JSON.stringify(v)}\n`)]))])));
}

function schema(s: Schema | Json): Buffer {
  const o = s as Json;
  const parts: Buffer[] = [...str(1, o.$ref), ...str(2, o.format), ...str(4, o.description), ...strs(19, o.required)];
  if (Array.isArray(o.enum)) for (const e of o.enum) parts.push(sub(20, msg([encodeField(2, `${JSON.stringify(e)}\n`)])));
  if (typeof o.additionalProperties === 'object' && o.additionalProperties !== null) parts.push(sub(21, msg([sub(1, schema(o.additionalProperties as Json))])));
  else if (typeof o.additionalProperties === 'boolean') parts.push(sub(21, msg([encodeField(2, o.additionalProperties ? 1 : 0)])));
  if (typeof o.type === 'string') parts.push(sub(22, msg([encodeField(1, o.type)])));
  if (o.items && typeof o.items === 'object') parts.push(sub(23, msg([sub(1, schema(o.items as Json))])));
  if (Array.isArray(o.allOf)) for (const a of o.allOf) parts.push(sub(24, schema(a as Json)));
  if (o.properties && typeof o.properties === 'object') {
    parts.push(sub(25, msg(Object.entries(o.properties as Json).map(([k, v]) => sub(1, msg([encodeField(1, k), sub(2, schema(v as Json))]))))));
  }
  parts.push(...vendorExtensions(31, o));
  return msg(parts);
}

function parameter(p: Json): Buffer {
  if (p.in === 'body') {
    const body = msg([...str(1, p.description), ...str(2, p.name), ...str(3, p.in), ...bool(4, p.required), ...(p.schema ? [sub(5, schema(p.schema as Json))] : [])]);
    return msg([sub(1, msg([sub(1, body)]))]);
  }
  // QueryParameterSubSchema (3) and PathParameterSubSchema (4) share their first four fields; type and uniqueItems differ in number.
  const isPath = p.in === 'path';
  const fields = msg([...bool(1, p.required), ...str(2, p.in), ...str(3, p.description), ...str(4, p.name), ...str(isPath ? 5 : 6, p.type), ...bool(isPath ? 19 : 20, p.uniqueItems)]);
  return msg([sub(1, msg([sub(2, msg([sub(isPath ? 4 : 3, fields)]))]))]);
}

function operation(o: Json): Buffer {
  const parts: Buffer[] = [...strs(1, o.tags), ...str(3, o.description), ...str(5, o.operationId), ...strs(6, o.produces), ...strs(7, o.consumes)];
  for (const p of (o.parameters as Json[] | undefined) ?? []) parts.push(sub(8, parameter(p)));
  const responses = Object.entries((o.responses as Record<string, Json> | undefined) ?? {}).map(([code, r]) =>
    sub(1, msg([encodeField(1, code), sub(2, msg([sub(1, msg([...str(1, r.description), ...(r.schema ? [sub(2, msg([sub(1, schema(r.schema as Json))]))] : [])]))]))])),
  );
  parts.push(sub(9, msg(responses)), ...strs(10, o.schemes), ...vendorExtensions(13, o));
  return msg(parts);
}

const METHODS: Record<string, number> = { get: 2, put: 3, post: 4, delete: 5, patch: 8 };

function pathItem(item: Json): Buffer {
  const parts: Buffer[] = [];
  for (const [m, num] of Object.entries(METHODS)) if (item[m]) parts.push(sub(num, operation(item[m] as Json)));
  for (const p of (item.parameters as Json[] | undefined) ?? []) parts.push(sub(9, parameter(p)));
  return msg(parts);
}

/** openapi_v2.Document in protobuf: swagger 1, info 2, paths 8, definitions 9. */
export function encodeSwagger(doc: Json): Buffer {
  const info = doc.info as Json;
  const p = Object.entries(doc.paths as Record<string, Json>).map(([name, item]) => sub(2, msg([encodeField(1, name), sub(2, pathItem(item))])));
  const defs = Object.entries(doc.definitions as Record<string, Json>).map(([name, s]) => sub(1, msg([encodeField(1, name), sub(2, schema(s))])));
  return msg([encodeField(1, doc.swagger as string), sub(2, msg([...str(1, info.title), ...str(2, info.version)])), sub(8, msg(p)), sub(9, msg(defs))]);
}
