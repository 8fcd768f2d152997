// OpenAPI v3 (the root index and one document per group-version, enough for kubectl's server-side field validation check) and v2.
import { createHash } from 'node:crypto';
import { closure, SCHEMAS, type Schema } from './schemas.js';
import { GROUPS, RESOURCES, groupVersion, type ResourceDef } from './resources.js';
import { KUBE_VERSION } from './discovery.js';
import { encodeSwagger, OPENAPI_V2_PROTOBUF, OPENAPI_V2_PROTOBUF_ACCEPT, swaggerDocument } from './openapi-v2.js';

const META = 'io.k8s.apimachinery.pkg.apis.meta.v1';
const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const PATCH_TYPES = ['application/apply-patch+yaml', 'application/json-patch+json', 'application/merge-patch+json', 'application/strategic-merge-patch+json'];

const docPath = (g: { group: string; version: string }) => (g.group ? `apis/${g.group}/${g.version}` : `api/${g.version}`);

function query(name: string, description: string, type: 'string' | 'boolean' | 'integer' = 'string') {
  return { name, in: 'query', description, schema: { type, uniqueItems: true } };
}

const DRY_RUN = query('dryRun', 'When present, modifications are not persisted. Valid value: All.');
const FIELD_MANAGER = query('fieldManager', 'Name of the actor making these changes.');
const FIELD_VALIDATION = query('fieldValidation', 'How unknown and duplicate fields are treated: Ignore, Warn (default) or Strict.');
const FORCE = query('force', 'Force apply requests, taking conflicting fields.', 'boolean');
const PRETTY = query('pretty', 'If true, output is pretty printed.');
const LIST_PARAMS = [
  query('labelSelector', 'Restrict the list to objects matching these labels.'),
  query('fieldSelector', 'Restrict the list to objects matching these fields (metadata.name, and spec.signerName for CSRs).'),
  query('resourceVersion', 'The version to list at or watch from.'),
  query('resourceVersionMatch', 'How resourceVersion applies to a list: Exact or NotOlderThan.'),
  query('continue', 'Never needed: every matching object is returned in one page.'),
  query('watch', 'Watch for changes and stream them as events.', 'boolean'),
  query('allowWatchBookmarks', 'Bookmark events may be sent.', 'boolean'),
  query('sendInitialEvents', 'On a watch: the current objects first, then a bookmark marking their end.', 'boolean'),
  query('timeoutSeconds', 'Time limit of a list or watch call.', 'integer'),
  query('limit', 'Accepted; every matching object is returned in one page.', 'integer'),
];

function json(schema: Schema) {
  return { content: { 'application/json': { schema }, 'application/yaml': { schema } } };
}

function operations(r: ResourceDef) {
  const gvk = { group: r.group, version: r.version, kind: r.kind };
  const kindRef = ref(r.schema!);
  const listRef = ref(r.schema!.replace(/\.([A-Za-z]+)$/, '.$1List'));
  const base = `/${r.group ? `apis/${r.group}` : 'api'}/${r.version}${r.namespaced ? '/namespaces/{namespace}' : ''}/${r.resource}`;
  const nsParam = r.namespaced ? [{ name: 'namespace', in: 'path', required: true, schema: { type: 'string' } }] : [];
  const nameParam = { name: 'name', in: 'path', required: true, description: `name of the ${r.kind}`, schema: { type: 'string' } };
  const op = (action: string, id: string, extra: Record<string, unknown>) => ({
    operationId: id,
    tags: [groupVersion(r).replace(/[./]/g, '_')],
    'x-kubernetes-action': action,
    'x-kubernetes-group-version-kind': gvk,
    ...extra,
  });
  const K = r.kind;
  const paths: Record<string, unknown> = {};
  const collection: Record<string, unknown> = { parameters: [...nsParam, PRETTY] };
  if (r.verbs.includes('list')) collection.get = op('list', `list${K}`, { parameters: LIST_PARAMS, responses: { '200': json(listRef) } });
  if (r.verbs.includes('create')) {
    collection.post = op('post', `create${K}`, {
      parameters: [DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION],
      requestBody: { ...json(kindRef), required: true },
      responses: { '200': json(kindRef), '201': json(kindRef), '202': json(kindRef) },
    });
  }
  paths[base] = collection;
  if (r.verbs.includes('get')) {
    const item = (action: string, sub: string) => ({
      parameters: [...nsParam, nameParam, PRETTY],
      get: op('get', `read${K}${sub}`, { responses: { '200': json(kindRef) } }),
      put: op('put', `replace${K}${sub}`, {
        parameters: [DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION],
        requestBody: { ...json(kindRef), required: true },
        responses: { '200': json(kindRef), '201': json(kindRef) },
      }),
      patch: op('patch', `patch${K}${sub}`, {
        parameters: [DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION, FORCE],
        requestBody: { content: Object.fromEntries(PATCH_TYPES.map((t) => [t, { schema: ref(`${META}.Patch`) }])), required: true },
        responses: { '200': json(kindRef), '201': json(kindRef) },
      }),
      ...(action === 'main'
        ? {
            delete: op('delete', `delete${K}`, {
              parameters: [DRY_RUN, query('gracePeriodSeconds', 'Ignored: deletion is immediate.', 'integer'), query('propagationPolicy', 'Accepted; nothing depends on these objects.')],
              requestBody: { content: { 'application/json': { schema: ref(`${META}.DeleteOptions`) } } },
              responses: { '200': json(kindRef), '202': json(kindRef) },
            }),
          }
        : {}),
    });
    paths[`${base}/{name}`] = item('main', '');
    for (const s of r.subresources) paths[`${base}/{name}/${s.name}`] = item(s.name, s.name[0].toUpperCase() + s.name.slice(1));
  }
  return paths;
}

function groupDocument(g: { group: string; version: string }) {
  const rs = RESOURCES.filter((r) => r.group === g.group && r.version === g.version && r.schema);
  const paths: Record<string, unknown> = {};
  for (const r of rs) Object.assign(paths, operations(r));
  const names = rs.flatMap((r) => [r.schema!, r.schema!.replace(/\.([A-Za-z]+)$/, '.$1List')]).concat([`${META}.Status`, `${META}.DeleteOptions`]);
  const schemas = { ...closure(names.filter((n) => SCHEMAS[n])), [`${META}.Patch`]: { type: 'object', description: 'A patch body; its form is given by the Content-Type.' } };
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes (trustplane)', version: KUBE_VERSION.gitVersion },
    paths,
    components: { schemas },
  };
}

/** Built once: the documents depend only on the resource table. */
export class OpenApi {
  private readonly docs = new Map<string, { body: string; hash: string }>();
  private readonly v2Json: Buffer;
  private readonly v2Protobuf: Buffer;
  private readonly v2Etags: string[];

  constructor() {
    const swagger = swaggerDocument();
    this.v2Json = Buffer.from(JSON.stringify(swagger));
    this.v2Protobuf = encodeSwagger(swagger);
    this.v2Etags = [this.v2Json, this.v2Protobuf].map((b) => createHash('sha512').update(b).digest('hex').slice(0, 64).toUpperCase());
    for (const g of GROUPS) {
      const body = JSON.stringify(groupDocument(g));
      this.docs.set(docPath(g), { body, hash: createHash('sha512').update(body).digest('hex').slice(0, 128).toUpperCase() });
    }
  }

  root(): string {
    const paths: Record<string, { serverRelativeURL: string }> = {};
    for (const [p, d] of this.docs) paths[p] = { serverRelativeURL: `/openapi/v3/${p}?hash=${d.hash}` };
    return JSON.stringify({ paths });
  }

  /** /openapi/v2: the gnostic protobuf when Accept asks for it (kubectl before 1.29), else JSON. */
  v2(accept: string | undefined): { body: Buffer; contentType: string; etag: string } {
    const pb = !!accept && accept.split(',').some((a) => OPENAPI_V2_PROTOBUF_ACCEPT.includes(a.split(';')[0].trim()));
    const body = pb ? this.v2Protobuf : this.v2Json;
    return { body, contentType: pb ? OPENAPI_V2_PROTOBUF : 'application/json', etag: pb ? this.v2Etags[1] : this.v2Etags[0] };
  }

  /** The document for "apis/G/V" or "api/v1", as JSON text. */
  document(path: string): { body: string; hash: string } | undefined {
    return this.docs.get(path);
  }
}
