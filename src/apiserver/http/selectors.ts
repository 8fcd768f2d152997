// labelSelector and fieldSelector query parameters, as predicates over objects.
import { badRequestError } from '../status.js';
import type { KubeObject } from '../types.js';

type Requirement = { key: string; op: 'in' | 'notin' | 'exists' | '!exists'; values: string[] };

/** "a=b,c!=d,e,!f,g in (x,y),h notin (z)" → predicate over labels. */
export function parseLabelSelector(s: string | null): (labels: Record<string, string> | undefined) => boolean {
  if (!s) return () => true;
  const reqs: Requirement[] = [];
  // Split on commas outside parentheses.
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  for (const raw of parts) {
    const p = raw.trim();
    if (p === '') continue;
    let m: RegExpExecArray | null;
    if ((m = /^([^\s!=(),]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(p))) {
      reqs.push({ key: m[1], op: m[2] as 'in' | 'notin', values: m[3].split(',').map((v) => v.trim()) });
    } else if ((m = /^([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)$/.exec(p))) {
      reqs.push({ key: m[1], op: m[2] === '!=' ? 'notin' : 'in', values: [m[3]] });
    } else if ((m = /^!\s*([^\s!=(),]+)$/.exec(p))) {
      reqs.push({ key: m[1], op: '!exists', values: [] });
    } else if ((m = /^([^\s!=(),]+)$/.exec(p))) {
      reqs.push({ key: m[1], op: 'exists', values: [] });
    } else throw badRequestError(`unable to parse requirement: "${p}" in label selector "${s}"`);
  }
  return (labels) => {
    const l = labels ?? {};
    return reqs.every((r) => {
      const has = Object.prototype.hasOwnProperty.call(l, r.key);
      switch (r.op) {
        case 'exists':
          return has;
        case '!exists':
          return !has;
        case 'in':
          return has && r.values.includes(l[r.key]);
        case 'notin':
          return !has || !r.values.includes(l[r.key]);
      }
    });
  };
}

/** "metadata.name=x,spec.signerName!=y" over the fields `fieldOf` knows; any other field is a 400, as kube-apiserver. */
export function parseFieldSelector(s: string | null, fieldOf: (obj: KubeObject, field: string) => string | undefined, supported: string[]): (obj: KubeObject) => boolean {
  if (!s) return () => true;
  const reqs: Array<{ field: string; neg: boolean; value: string }> = [];
  for (const raw of s.split(',')) {
    const p = raw.trim();
    if (p === '') continue;
    const m = /^([^=!]+)(==|=|!=)(.*)$/.exec(p);
    if (!m) throw badRequestError(`invalid field selector: "${p}"`);
    const field = m[1].trim();
    if (!supported.includes(field)) throw badRequestError(`field label not supported: ${field}`);
    reqs.push({ field, neg: m[2] === '!=', value: m[3].trim() });
  }
  return (obj) => reqs.every((r) => (fieldOf(obj, r.field) === r.value) !== r.neg);
}
