// PATCH bodies: JSON merge patch (RFC 7386), strategic merge patch (kubectl apply), JSON patch (RFC 6902).
import { badRequestError, ApiError } from '../status.js';
import { resolve, type Schema } from './schemas.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Sets an own property, whatever its name: `o["__proto__"] = v` would replace the object's prototype instead (and make
 * the patch's fields appear inherited), so a body field named "__proto__" stays an ordinary, unknown field.
 */
function setOwn(o: JsonObject, k: string, v: Json): void {
  Object.defineProperty(o, k, { value: v, writable: true, enumerable: true, configurable: true });
}

const own = (o: JsonObject, k: string): Json | undefined => (Object.hasOwn(o, k) ? o[k] : undefined);

export function mergePatch(target: unknown, patch: unknown): Json {
  if (!isObject(patch)) return structuredClone(patch as Json);
  const out: JsonObject = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else setOwn(out, k, mergePatch(own(out, k), v));
  }
  return out;
}

/** Removes strategic-merge directives from a value that is inserted as is. */
function clean(v: Json): Json {
  if (Array.isArray(v)) return v.filter((x) => !(isObject(x) && x.$patch === 'delete')).map(clean);
  if (!isObject(v)) return v;
  const out: JsonObject = {};
  for (const [k, x] of Object.entries(v)) if (!k.startsWith('$')) setOwn(out, k, clean(x));
  return out;
}

function child(schema: Schema | undefined, key: string): Schema | undefined {
  if (!schema) return undefined;
  const s = resolve(schema);
  if (s.properties && Object.hasOwn(s.properties, key)) return s.properties[key];
  if (typeof s.additionalProperties === 'object') return s.additionalProperties;
  return undefined;
}

export function strategicMergePatch(target: unknown, patch: unknown, schema: Schema | undefined): Json {
  if (!isObject(patch)) return clean(patch as Json);
  const directive = patch.$patch;
  if (directive === 'replace') return clean(patch);
  if (directive === 'delete') return null;
  if (directive !== undefined && directive !== 'merge') throw badRequestError(`strategic merge patch: unknown $patch directive "${String(directive)}"`);
  const out: JsonObject = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k === '$retainKeys' || k.startsWith('$setElementOrder/')) continue;
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const field = k.slice('$deleteFromPrimitiveList/'.length);
      const cur = own(out, field);
      if (Array.isArray(cur) && Array.isArray(v)) setOwn(out, field, cur.filter((x) => !v.includes(x)));
      continue;
    }
    if (k.startsWith('$')) throw badRequestError(`strategic merge patch: unknown directive "${k}"`);
    const sub = child(schema, k);
    if (v === null) delete out[k];
    else if (Array.isArray(v)) setOwn(out, k, mergeList(own(out, k), v, sub));
    else if (isObject(v)) {
      const merged = strategicMergePatch(own(out, k), v, sub);
      if (merged === null) delete out[k];
      else setOwn(out, k, merged);
    } else setOwn(out, k, v);
  }
  if (Array.isArray(patch.$retainKeys)) {
    const keep = new Set(patch.$retainKeys as string[]);
    for (const k of Object.keys(out)) if (!keep.has(k)) delete out[k];
  }
  return out;
}

function mergeList(current: Json | undefined, patch: Json[], schema: Schema | undefined): Json[] {
  const s = schema && resolve(schema);
  const key = s?.['x-kubernetes-patch-merge-key'];
  const merge = s?.['x-kubernetes-patch-strategy']?.split(',').includes('merge');
  if (!merge || !Array.isArray(current)) return clean(patch) as Json[];
  if (!key) {
    const out = [...current];
    for (const x of patch) if (!out.some((y) => JSON.stringify(y) === JSON.stringify(x))) out.push(x);
    return out;
  }
  const out = [...current];
  for (const el of patch) {
    if (!isObject(el)) continue;
    const i = out.findIndex((x) => isObject(x) && x[key] === el[key]);
    if (el.$patch === 'delete') {
      if (i >= 0) out.splice(i, 1);
    } else if (i >= 0) out[i] = strategicMergePatch(out[i], el, s?.items);
    else out.push(clean(el));
  }
  return out;
}

interface JsonPatchOp {
  op: string;
  path: string;
  from?: string;
  value?: Json;
}

function pointer(p: string): string[] {
  if (p === '') return [];
  if (!p.startsWith('/')) throw badRequestError(`json patch: path "${p}" does not start with "/"`);
  return p.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function containerOf(doc: Json, parts: string[], path: string): { parent: Json; last: string } {
  let cur = doc;
  for (const part of parts.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[Number(part)];
    else if (isObject(cur)) cur = own(cur, part) as Json;
    else cur = undefined as unknown as Json;
    if (cur === undefined || cur === null) throw new ApiError('Invalid', `json patch: path "${path}" does not exist`);
  }
  return { parent: cur, last: parts[parts.length - 1] };
}

function getAt(doc: Json, path: string): Json {
  const parts = pointer(path);
  if (parts.length === 0) return doc;
  const { parent, last } = containerOf(doc, parts, path);
  const v = Array.isArray(parent) ? parent[Number(last)] : isObject(parent) ? own(parent, last) : undefined;
  if (v === undefined) throw new ApiError('Invalid', `json patch: path "${path}" does not exist`);
  return v;
}

function removeAt(doc: Json, path: string): void {
  const { parent, last } = containerOf(doc, pointer(path), path);
  if (Array.isArray(parent)) {
    const i = Number(last);
    if (!Number.isInteger(i) || i < 0 || i >= parent.length) throw new ApiError('Invalid', `json patch: path "${path}" does not exist`);
    parent.splice(i, 1);
  } else if (isObject(parent) && Object.hasOwn(parent, last)) delete parent[last];
  else throw new ApiError('Invalid', `json patch: path "${path}" does not exist`);
}

function addAt(doc: Json, path: string, value: Json, replace: boolean): Json {
  const parts = pointer(path);
  if (parts.length === 0) return value;
  const { parent, last } = containerOf(doc, parts, path);
  if (Array.isArray(parent)) {
    const i = last === '-' ? parent.length : Number(last);
    if (!Number.isInteger(i) || i < 0 || i > parent.length || (replace && i >= parent.length)) throw new ApiError('Invalid', `json patch: index in "${path}" is out of range`);
    if (replace) parent[i] = value;
    else parent.splice(i, 0, value);
  } else if (isObject(parent)) {
    if (replace && !Object.hasOwn(parent, last)) throw new ApiError('Invalid', `json patch: path "${path}" does not exist`);
    setOwn(parent, last, value);
  } else throw new ApiError('Invalid', `json patch: path "${path}" does not exist`);
  return doc;
}

/** kube-apiserver's bound on the operations of one JSON patch (refused with 413). */
export const MAX_JSON_PATCH_OPERATIONS = 10_000;
/**
 * How many bytes "copy" operations may add in one patch, as kube-apiserver's JSONPatchMaxCopyBytes (its request body
 * limit): without it, a few dozen copies of the whole document into itself double it each time and hold the event loop.
 */
export const MAX_JSON_PATCH_COPY_BYTES = 3 * 1024 * 1024;

/** The `from` of a move or copy: required, as RFC 6902 says (a missing one must not default to the whole document). */
function fromOf(op: JsonPatchOp): string {
  if (typeof op.from !== 'string') throw badRequestError(`json patch: a "${op.op}" operation needs "from"`);
  return op.from;
}

export function jsonPatch(target: unknown, ops: unknown): Json {
  if (!Array.isArray(ops)) throw badRequestError('json patch: the body must be a list of operations');
  if (ops.length > MAX_JSON_PATCH_OPERATIONS) {
    throw new ApiError('RequestEntityTooLarge', `The allowed maximum operations in a JSON patch is ${MAX_JSON_PATCH_OPERATIONS}, got ${ops.length}`);
  }
  let doc = structuredClone(target as Json);
  let copied = 0;
  for (const raw of ops as JsonPatchOp[]) {
    if (!isObject(raw as unknown) || typeof raw.path !== 'string') throw badRequestError('json patch: every operation needs "op" and "path"');
    switch (raw.op) {
      case 'add':
        doc = addAt(doc, raw.path, structuredClone(raw.value ?? null), false);
        break;
      case 'replace':
        doc = addAt(doc, raw.path, structuredClone(raw.value ?? null), true);
        break;
      case 'remove':
        removeAt(doc, raw.path);
        break;
      case 'move': {
        const from = fromOf(raw);
        if (raw.path === from) break;
        if (raw.path.startsWith(`${from}/`)) throw new ApiError('Invalid', `json patch: cannot move "${from}" into its own child "${raw.path}"`);
        const v = getAt(doc, from);
        removeAt(doc, from);
        doc = addAt(doc, raw.path, v, false);
        break;
      }
      case 'copy': {
        const v = getAt(doc, fromOf(raw));
        copied += Buffer.byteLength(JSON.stringify(v) ?? '');
        if (copied > MAX_JSON_PATCH_COPY_BYTES) {
          throw new ApiError('Invalid', `json patch: unable to copy, a total of ${copied} bytes would exceed the limit of ${MAX_JSON_PATCH_COPY_BYTES} bytes`);
        }
        doc = addAt(doc, raw.path, structuredClone(v), false);
        break;
      }
      case 'test':
        if (JSON.stringify(getAt(doc, raw.path)) !== JSON.stringify(raw.value)) throw new ApiError('Invalid', `json patch: test of "${raw.path}" failed`);
        break;
      default:
        throw badRequestError(`json patch: unknown operation "${raw.op}"`);
    }
  }
  return doc;
}
