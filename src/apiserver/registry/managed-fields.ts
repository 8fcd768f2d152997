// metadata.managedFields: which field manager last wrote which fields, recorded on every write that names a manager, as kube-apiserver does.
import type { KubeObject } from '../types.js';

/** Who is writing, as the request named it (fieldManager, or the User-Agent's product when it did not). */
export interface FieldManager {
  manager: string;
  /** Create, update and every patch but server-side apply are "Update", as in kube-apiserver. */
  operation: 'Update' | 'Apply';
  subresource?: string;
  /** For "Apply": the applied configuration, whose fields the manager owns from now on (and only those). */
  applied?: Record<string, unknown>;
}

export interface ManagedFieldsEntry {
  manager: string;
  operation: 'Update' | 'Apply';
  apiVersion: string;
  time: string;
  fieldsType: 'FieldsV1';
  fieldsV1: FieldsV1;
  subresource?: string;
}

/** The FieldsV1 trie: "f:<name>" for a field, "." when a field is owned itself as well as below. */
export type FieldsV1 = { [key: string]: FieldsV1 };

/** Metadata that identifies the object or that the server keeps: nobody manages it. */
const UNMANAGED_METADATA = new Set(['name', 'namespace', 'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'managedFields', 'selfLink', 'generateName']);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Leaf paths of an object, each a JSON-encoded list of field names. Lists are atomic (a list is one field); empty
 * objects own nothing. A simplification of structured-merge-diff, which also tracks list items by merge key.
 */
function leaves(v: unknown, path: string[], out: Set<string>, skip: Set<string>): void {
  if (isObject(v)) {
    for (const [k, x] of Object.entries(v)) {
      if (path.length === 0 && (k === 'apiVersion' || k === 'kind')) continue;
      if (path.length === 1 && path[0] === 'metadata' && UNMANAGED_METADATA.has(k)) continue;
      if (x === undefined || skip.has([...path, k].join('.'))) continue;
      leaves(x, [...path, k], out, skip);
    }
    return;
  }
  if (path.length) out.add(JSON.stringify(path));
}

function fieldSet(obj: unknown, skip: Set<string>): Set<string> {
  const out = new Set<string>();
  leaves(obj, [], out, skip);
  return out;
}

function valueAt(obj: unknown, path: string[]): unknown {
  let cur = obj;
  for (const p of path) {
    if (!isObject(cur)) return undefined;
    cur = cur[p];
  }
  return cur;
}

/** Leaf paths whose value differs between the two objects, removed ones included. */
function changed(before: unknown, after: unknown, skip: Set<string>): { set: Set<string>; removed: Set<string> } {
  const a = fieldSet(before, skip);
  const b = fieldSet(after, skip);
  const set = new Set<string>();
  const removed = new Set<string>();
  for (const p of b) {
    const path = JSON.parse(p) as string[];
    if (!a.has(p) || JSON.stringify(valueAt(before, path)) !== JSON.stringify(valueAt(after, path))) set.add(p);
  }
  for (const p of a) {
    if (!b.has(p)) {
      set.add(p);
      removed.add(p);
    }
  }
  return { set, removed };
}

export function toFieldsV1(paths: Iterable<string>): FieldsV1 {
  const root: FieldsV1 = {};
  for (const p of paths) {
    let node = root;
    for (const name of JSON.parse(p) as string[]) node = node[`f:${name}`] ??= {};
  }
  return root;
}

export function fromFieldsV1(f: unknown, path: string[] = [], out = new Set<string>()): Set<string> {
  if (!isObject(f)) return out;
  const keys = Object.keys(f).filter((k) => k.startsWith('f:'));
  if ((keys.length === 0 || '.' in f) && path.length) out.add(JSON.stringify(path));
  for (const k of keys) fromFieldsV1(f[k], [...path, k.slice(2)], out);
  return out;
}

/** `p` is `q` or lies below it, or above it (either way, a write of one touches the other). */
function overlaps(p: string, q: string): boolean {
  const a = JSON.parse(p) as string[];
  const b = JSON.parse(q) as string[];
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

function readEntries(v: unknown): ManagedFieldsEntry[] {
  if (!Array.isArray(v)) return [];
  return v.filter((e): e is ManagedFieldsEntry => isObject(e) && typeof e.manager === 'string' && (e.operation === 'Update' || e.operation === 'Apply'));
}

/**
 * The managed fields after `who` changed `before` (undefined on create) into `after`: the writer's entry gains the
 * fields it changed (an applier owns exactly what it applied), and every other entry loses them. Entries left owning
 * nothing are dropped. `serverSet` (dotted paths) are fields the server fills in, which nobody owns.
 */
export function managedFieldsAfter(before: KubeObject | undefined, after: KubeObject, who: FieldManager, time: string, apiVersion: string, serverSet: string[] = []): ManagedFieldsEntry[] {
  const skip = new Set(serverSet);
  const entries = readEntries(before?.metadata.managedFields);
  const diff = changed(before, after, skip);
  const taken = who.operation === 'Apply' && who.applied ? fieldSet(who.applied, skip) : new Set([...diff.set].filter((p) => !diff.removed.has(p)));
  const touched = new Set([...taken, ...diff.set]);
  const same = (e: ManagedFieldsEntry) => e.manager === who.manager && e.operation === who.operation && (e.subresource ?? '') === (who.subresource ?? '');
  const out: ManagedFieldsEntry[] = [];
  let mine: Set<string> | undefined;
  let at = -1;
  for (const e of entries) {
    const owned = fromFieldsV1(e.fieldsV1);
    if (same(e)) {
      at = out.length;
      mine = who.operation === 'Apply' ? new Set() : new Set([...owned].filter((p) => ![...touched].some((t) => overlaps(p, t))));
      out.push(e);
      continue;
    }
    const kept = [...owned].filter((p) => ![...touched].some((t) => overlaps(p, t)));
    if (kept.length === owned.size) out.push(e);
    else if (kept.length) out.push({ ...e, fieldsV1: toFieldsV1(kept) });
  }
  const fields = new Set([...(mine ?? []), ...taken]);
  if (at >= 0) out.splice(at, 1);
  if (fields.size === 0 && who.operation === 'Update') return out;
  const entry: ManagedFieldsEntry = {
    manager: who.manager,
    operation: who.operation,
    apiVersion,
    time,
    fieldsType: 'FieldsV1',
    fieldsV1: toFieldsV1([...fields].sort()),
    ...(who.subresource ? { subresource: who.subresource } : {}),
  };
  out.splice(at >= 0 ? at : out.length, 0, entry);
  return out;
}

/**
 * kube-apiserver's default manager when a request names none: the User-Agent up to its first "/", printable characters
 * only, at most 128 bytes ("kubectl" for "kubectl/v1.32.0 (linux/amd64) kubernetes/...").
 */
export function managerFromUserAgent(ua: string | undefined): string {
  let out = '';
  for (const ch of (ua ?? '').split('/')[0]) {
    if (/[\p{C}\p{Zl}\p{Zp}]|(?! )\p{Zs}/u.test(ch)) continue;
    if (Buffer.byteLength(out + ch) > 128) break;
    out += ch;
  }
  return out;
}
