// Server-side field validation (fieldValidation=Strict|Warn|Ignore): unknown fields and wrong types, judged against the schemas.
import type { FieldValidation } from '../http/query.js';
import { badRequestError } from '../status.js';
import { resolve, SCHEMAS, type Schema } from './schemas.js';

function typeOf(v: unknown): string {
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function fits(v: unknown, s: Schema): boolean {
  if (v === null) return true;
  if (s['x-kubernetes-int-or-string']) return typeof v === 'string' || typeof v === 'number';
  switch (s.type) {
    case 'string':
      return typeof v === 'string';
    case 'integer':
      // In range of the Go type the field decodes into, as encoding/json refuses an int32 or int64 overflow.
      return typeof v === 'number' && Number.isInteger(v) && Math.abs(v) <= (s.format === 'int32' ? 2 ** 31 : 2 ** 63);
    case 'number':
      return typeof v === 'number';
    case 'boolean':
      return typeof v === 'boolean';
    case 'array':
      return Array.isArray(v);
    case 'object':
      return typeof v === 'object' && !Array.isArray(v);
    default:
      return true;
  }
}

function walk(v: unknown, schema: Schema, path: string, unknown: string[], wrong: string[]): void {
  const s = resolve(schema);
  if (v === null || v === undefined) return;
  if (!fits(v, s)) {
    const overflow = s.type === 'integer' && typeof v === 'number' && Number.isInteger(v);
    wrong.push(
      overflow
        ? `${path || '<root>'}: ${v} is out of the range of an ${s.format ?? 'int64'}`
        : `${path || '<root>'}: expected ${s['x-kubernetes-int-or-string'] ? 'integer or string' : s.type}, got ${typeOf(v)}`,
    );
    return;
  }
  if (Array.isArray(v)) {
    if (s.items) v.forEach((x, i) => walk(x, s.items!, `${path}[${i}]`, unknown, wrong));
    return;
  }
  if (typeof v !== 'object' || s['x-kubernetes-preserve-unknown-fields']) return;
  const o = v as Record<string, unknown>;
  if (s.properties) {
    for (const k of Object.keys(o)) {
      const p = path ? `${path}.${k}` : k;
      // Own properties only: a field named "__proto__" or "constructor" is unknown, not Object.prototype's.
      const sub = Object.hasOwn(s.properties, k) ? s.properties[k] : undefined;
      if (sub) walk(o[k], sub, p, unknown, wrong);
      else if (typeof s.additionalProperties === 'object') walk(o[k], s.additionalProperties, p, unknown, wrong);
      else if (s.additionalProperties !== true) {
        unknown.push(p);
        delete o[k];
      }
    }
  } else if (typeof s.additionalProperties === 'object') {
    for (const k of Object.keys(o)) walk(o[k], s.additionalProperties, path ? `${path}.${k}` : k, unknown, wrong);
  }
}

/**
 * Checks `obj` against the schema named `schemaName`, removing unknown fields in place (as decoding into the typed object
 * would). Wrong types are always a 400; unknown fields are a 400 under Strict and warnings under Warn.
 */
export function validateFields(obj: Record<string, unknown>, schemaName: string, kind: string, mode: FieldValidation): string[] {
  const schema = SCHEMAS[schemaName];
  if (!schema) return [];
  const unknown: string[] = [];
  const wrong: string[] = [];
  walk(obj, schema, '', unknown, wrong);
  if (wrong.length) throw badRequestError(`${kind} in version "v1" cannot be handled as a ${kind}: ${wrong.join('; ')}`);
  if (unknown.length && mode === 'Strict') {
    throw badRequestError(`${kind} in version "v1" cannot be handled as a ${kind}: strict decoding error: ${unknown.map((u) => `unknown field "${u}"`).join(', ')}`);
  }
  return mode === 'Warn' ? unknown.map((u) => `unknown field "${u}"`) : [];
}
