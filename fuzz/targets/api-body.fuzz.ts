// Fuzz target: request bodies as the API server decodes them (JSON, YAML, kubectl's protobuf), then judged against a schema.
//
// Input: one selector byte, then the body. The selector (byte % 6) picks the Content-Type; seeds start with an ASCII
// digit so they stay readable: '0' JSON, '1' YAML, '2' apply-patch YAML, '3' protobuf, '4' none, '5' an unsupported type.
import { validateFields } from '../../src/apiserver/api/fields.js';
import { decodeObject, PROTOBUF } from '../../src/apiserver/http/body.js';
import { isClientRefusal, refusalsOnly } from '../refusals.js';

const MEDIA_TYPES = ['application/json', 'application/yaml', 'application/apply-patch+yaml', PROTOBUF, '', 'text/plain'];
const SCHEMAS: Array<[schema: string, kind: string]> = [
  ['io.k8s.api.certificates.v1.CertificateSigningRequest', 'CertificateSigningRequest'],
  ['io.k8s.api.core.v1.Node', 'Node'],
  ['io.k8s.api.coordination.v1.Lease', 'Lease'],
];
const MODES = ['Strict', 'Warn', 'Ignore'] as const;

export function fuzz(data: Buffer): void {
  if (data.length === 0) return;
  const type = MEDIA_TYPES[data[0] % MEDIA_TYPES.length];
  const obj = refusalsOnly(() => decodeObject(data.subarray(1), type), isClientRefusal);
  if (!obj) return;
  const [schema, kind] = SCHEMAS[data[0] % SCHEMAS.length];
  refusalsOnly(() => validateFields(obj, schema, kind, MODES[data.length % MODES.length]), isClientRefusal);
  // What survives decoding is sent back as JSON (in the response or the store): it must serialize.
  JSON.stringify(obj);
}
