// Fuzz target: labelSelector and fieldSelector query values, parsed and evaluated over objects as a list or watch does.
//
// Input: the label selector, a NUL byte, the field selector (no NUL: the whole input is the label selector).
import { parseFieldSelector, parseLabelSelector } from '../../src/apiserver/http/selectors.js';
import type { KubeObject } from '../../src/apiserver/types.js';
import { isClientRefusal, refusalsOnly } from '../refusals.js';

const OBJECTS: KubeObject[] = [
  { apiVersion: 'v1', kind: 'Node', metadata: { name: 'demo-node-1', labels: { 'kubernetes.io/hostname': 'demo-node-1', pool: 'default', tier: '' } } },
  { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n2' } },
  // Label keys that are also names on Object.prototype, as JSON.parse makes them (own properties).
  { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n3', labels: JSON.parse('{"a":"b","x.example/y":"z","toString":"x","__proto__":"p"}') } },
] as KubeObject[];

const FIELDS = ['metadata.name', 'spec.signerName', 'spec.unschedulable'];
const fieldOf = (o: KubeObject, f: string): string | undefined => (f === 'metadata.name' ? o.metadata.name : f === 'spec.signerName' ? 'kubernetes.io/kubelet-serving' : undefined);

export function fuzz(data: Buffer): void {
  const text = data.toString('utf8');
  const nul = text.indexOf('\0');
  const label = nul < 0 ? text : text.slice(0, nul);
  const field = nul < 0 ? null : text.slice(nul + 1);
  const labels = refusalsOnly(() => parseLabelSelector(label), isClientRefusal);
  const fields = refusalsOnly(() => parseFieldSelector(field, fieldOf, FIELDS), isClientRefusal);
  for (const o of OBJECTS) {
    // Evaluating a parsed selector is never a refusal: it answers true or false for every object.
    if (labels && typeof labels(o.metadata.labels) !== 'boolean') throw new Error('label selector answered a non-boolean');
    if (fields && typeof fields(o) !== 'boolean') throw new Error('field selector answered a non-boolean');
  }
}
