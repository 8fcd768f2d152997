// Object metadata rules shared by every resource: names, generated names, labels, annotations, timestamps.
import { randomInt } from 'node:crypto';
import type { StatusCause } from '../types.js';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
/** kube-apiserver's limit on the annotations of one object. */
export const MAX_ANNOTATIONS_BYTES = 256 * 1024;
// As Kubernetes' generated names: consonants and digits that cannot spell words.
const GENERATE_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

export function isDnsSubdomain(s: string): boolean {
  return s.length > 0 && s.length <= 253 && DNS1123_SUBDOMAIN.test(s);
}

export function isDnsLabel(s: string): boolean {
  return s.length > 0 && s.length <= 63 && DNS1123_LABEL.test(s);
}

/** "prefix/name" as in label and annotation keys and signer names. */
export function qualifiedNameProblem(key: string): string | undefined {
  const parts = key.split('/');
  if (parts.length > 2) return 'a qualified name must consist of alphanumeric characters, "-", "_" or ".", with an optional DNS subdomain prefix and "/"';
  const name = parts[parts.length - 1];
  if (parts.length === 2 && !isDnsSubdomain(parts[0])) return `prefix part "${parts[0]}" must be a DNS subdomain`;
  if (name.length === 0 || name.length > 63 || !QUALIFIED_NAME.test(name)) {
    return 'name part must consist of alphanumeric characters, "-", "_" or ".", and must start and end with an alphanumeric character (at most 63 characters)';
  }
  return undefined;
}

export function generateName(prefix: string): string {
  let s = prefix;
  for (let i = 0; i < 5; i++) s += GENERATE_ALPHABET[randomInt(GENERATE_ALPHABET.length)];
  return s;
}

/** RFC 3339 at second precision, as metav1.Time marshals. */
export function timestamp(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** RFC 3339 at microsecond precision, as metav1.MicroTime marshals. */
export function microTimestamp(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

function isStringMap(v: unknown): v is Record<string, string> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string');
}

/** Problems with the name, labels and annotations of an object about to be written. */
export function metadataCauses(meta: { name?: unknown; labels?: unknown; annotations?: unknown }, nameRule: 'subdomain' | 'label' = 'subdomain'): StatusCause[] {
  const causes: StatusCause[] = [];
  const name = meta.name;
  if (typeof name !== 'string' || name === '') {
    causes.push({ field: 'metadata.name', reason: 'FieldValueRequired', message: 'Required value: name or generateName is required' });
  } else if (nameRule === 'subdomain' ? !isDnsSubdomain(name) : !isDnsLabel(name)) {
    causes.push({
      field: 'metadata.name',
      message: `Invalid value: "${name}": a lowercase RFC 1123 ${nameRule === 'subdomain' ? 'subdomain' : 'label'} must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`,
    });
  }
  if (meta.labels !== undefined && meta.labels !== null) {
    if (!isStringMap(meta.labels)) causes.push({ field: 'metadata.labels', message: 'Invalid value: labels must map strings to strings' });
    else {
      for (const [k, v] of Object.entries(meta.labels)) {
        const p = qualifiedNameProblem(k);
        if (p) causes.push({ field: 'metadata.labels', message: `Invalid value: "${k}": ${p}` });
        if (v.length > 63 || !LABEL_VALUE.test(v)) {
          causes.push({ field: 'metadata.labels', message: `Invalid value: "${v}": a valid label value must be 63 characters or less and consist of alphanumeric characters, '-', '_' or '.'` });
        }
      }
    }
  }
  if (meta.annotations !== undefined && meta.annotations !== null) {
    if (!isStringMap(meta.annotations)) causes.push({ field: 'metadata.annotations', message: 'Invalid value: annotations must map strings to strings' });
    else {
      let size = 0;
      for (const [k, v] of Object.entries(meta.annotations)) {
        const p = qualifiedNameProblem(k);
        if (p) causes.push({ field: 'metadata.annotations', message: `Invalid value: "${k}": ${p}` });
        size += Buffer.byteLength(k) + Buffer.byteLength(v);
      }
      if (size > MAX_ANNOTATIONS_BYTES) {
        causes.push({ field: 'metadata.annotations', reason: 'FieldValueTooLong', message: `Too long: may not be more than ${MAX_ANNOTATIONS_BYTES} bytes` });
      }
    }
  }
  return causes;
}
