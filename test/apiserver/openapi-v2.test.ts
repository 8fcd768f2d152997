// /openapi/v2: the gnostic openapi_v2.Document protobuf (decoded here with protobufjs against the messages of
// github.com/google/gnostic openapiv2/OpenAPIv2.proto) and the JSON swagger document, served by a real API server.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import protobuf from 'protobufjs';
import { call, startTestCluster, type TestCluster } from './harness.js';

/** The gnostic messages the encoder writes, with gnostic's field numbers. */
const GNOSTIC = `
syntax = "proto3";
package openapi.v2;
message Any { string yaml = 2; }
message NamedAny { string name = 1; Any value = 2; }
message Info { string title = 1; string version = 2; }
message Document { string swagger = 1; Info info = 2; Paths paths = 8; Definitions definitions = 9; }
message Paths { repeated NamedAny vendor_extension = 1; repeated NamedPathItem path = 2; }
message NamedPathItem { string name = 1; PathItem value = 2; }
message PathItem { Operation get = 2; Operation put = 3; Operation post = 4; Operation delete = 5; Operation patch = 8; repeated ParametersItem parameters = 9; }
message Operation { repeated string tags = 1; string description = 3; string operation_id = 5; repeated string produces = 6; repeated string consumes = 7;
  repeated ParametersItem parameters = 8; Responses responses = 9; repeated string schemes = 10; repeated NamedAny vendor_extension = 13; }
message ParametersItem { oneof oneof { Parameter parameter = 1; } }
message Parameter { oneof oneof { BodyParameter body_parameter = 1; NonBodyParameter non_body_parameter = 2; } }
message BodyParameter { string description = 1; string name = 2; string in = 3; bool required = 4; Schema schema = 5; }
message NonBodyParameter { oneof oneof { QueryParameterSubSchema query_parameter_sub_schema = 3; PathParameterSubSchema path_parameter_sub_schema = 4; } }
message QueryParameterSubSchema { bool required = 1; string in = 2; string description = 3; string name = 4; string type = 6; bool unique_items = 20; }
message PathParameterSubSchema { bool required = 1; string in = 2; string description = 3; string name = 4; string type = 5; bool unique_items = 19; }
message Responses { repeated NamedResponseValue response_code = 1; }
message NamedResponseValue { string name = 1; ResponseValue value = 2; }
message ResponseValue { oneof oneof { Response response = 1; } }
message Response { string description = 1; SchemaItem schema = 2; }
message SchemaItem { oneof oneof { Schema schema = 1; } }
message Definitions { repeated NamedSchema additional_properties = 1; }
message NamedSchema { string name = 1; Schema value = 2; }
message Properties { repeated NamedSchema additional_properties = 1; }
message AdditionalPropertiesItem { oneof oneof { Schema schema = 1; bool boolean = 2; } }
message TypeItem { repeated string value = 1; }
message ItemsItem { repeated Schema schema = 1; }
message Schema { string _ref = 1; string format = 2; string description = 4; repeated string required = 19; repeated Any enum = 20;
  AdditionalPropertiesItem additional_properties = 21; TypeItem type = 22; ItemsItem items = 23; repeated Schema all_of = 24;
  Properties properties = 25; repeated NamedAny vendor_extension = 31; }
`;

/* eslint-disable @typescript-eslint/no-explicit-any */
const ext = (o: any, name: string) => {
  const e = (o.vendorExtension ?? []).find((x: any) => x.name === name);
  return e ? JSON.parse(e.value.yaml) : undefined;
};
const named = (list: any[], name: string) => list.find((x) => x.name === name)?.value;

describe('OpenAPI v2', () => {
  let c: TestCluster;
  before(async () => {
    c = await startTestCluster();
  });
  after(() => c?.stop());

  it('protobuf, as kubectl 1.27/1.28 ask for it: definitions with GVKs and patch strategies, paths with their parameters', async () => {
    const r = await call(c, c.admin, 'GET', '/openapi/v2', { headers: { Accept: 'application/com.github.proto-openapi.spec.v2@v1.0+protobuf' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf', 'the reply type has no "@": Go\'s mime parser refuses it');
    assert.ok(r.headers.etag);
    const raw = await rawBody('/openapi/v2', 'application/com.github.proto-openapi.spec.v2@v1.0+protobuf');
    const Document = protobuf.parse(GNOSTIC).root.lookupType('openapi.v2.Document');
    const doc = Document.toObject(Document.decode(raw), { defaults: false }) as any;
    assert.equal(doc.swagger, '2.0');
    assert.match(doc.info.version, /^v1\.32\./);

    const defs = doc.definitions.additionalProperties;
    const csr = named(defs, 'io.k8s.api.certificates.v1.CertificateSigningRequest');
    assert.ok(csr, 'the CSR definition');
    assert.deepEqual(ext(csr, 'x-kubernetes-group-version-kind'), [{ group: 'certificates.k8s.io', version: 'v1', kind: 'CertificateSigningRequest' }]);
    assert.deepEqual(csr.type.value, ['object']);
    assert.equal(named(csr.properties.additionalProperties, 'spec')._ref, '#/definitions/io.k8s.api.certificates.v1.CertificateSigningRequestSpec');
    const node = named(defs, 'io.k8s.api.core.v1.Node');
    assert.deepEqual(ext(node, 'x-kubernetes-group-version-kind'), [{ group: '', version: 'v1', kind: 'Node' }]);
    const nodeStatus = named(defs, 'io.k8s.api.core.v1.NodeStatus');
    const conditions = named(nodeStatus.properties.additionalProperties, 'conditions');
    assert.equal(ext(conditions, 'x-kubernetes-patch-merge-key'), 'type');
    assert.equal(ext(conditions, 'x-kubernetes-patch-strategy'), 'merge');
    assert.equal(conditions.items.schema[0]._ref, '#/definitions/io.k8s.api.core.v1.NodeCondition');
    const labels = named(named(defs, 'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta').properties.additionalProperties, 'labels');
    assert.deepEqual(labels.additionalProperties.schema.type.value, ['string']);
    // Every $ref points at a definition that is there.
    const names = new Set(defs.map((d: any) => d.name));
    const refs = JSON.stringify(doc).match(/"_ref":"#\/definitions\/[^"]+"/g) ?? [];
    for (const ref of refs) assert.ok(names.has(ref.slice('"_ref":"#/definitions/'.length, -1)), ref);

    const item = named(doc.paths.path, '/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}');
    assert.equal(item.patch.operationId, 'patchCertificateSigningRequest');
    assert.deepEqual(ext(item.patch, 'x-kubernetes-group-version-kind'), { group: 'certificates.k8s.io', version: 'v1', kind: 'CertificateSigningRequest' });
    const query = item.patch.parameters.map((p: any) => p.parameter.nonBodyParameter?.queryParameterSubSchema?.name).filter(Boolean);
    assert.ok(query.includes('fieldValidation') && query.includes('fieldManager'), JSON.stringify(query));
    assert.equal(item.parameters[0].parameter.nonBodyParameter.pathParameterSubSchema.name, 'name');
    assert.ok(named(doc.paths.path, '/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}/approval').put);
    assert.ok(named(doc.paths.path, '/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}').get);
  });

  it('JSON for any other Accept, the same document', async () => {
    const r = await call(c, c.admin, 'GET', '/openapi/v2');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.equal(r.json.swagger, '2.0');
    assert.deepEqual(r.json.definitions['io.k8s.api.certificates.v1.CertificateSigningRequest']['x-kubernetes-group-version-kind'], [{ group: 'certificates.k8s.io', version: 'v1', kind: 'CertificateSigningRequest' }]);
    assert.ok(r.json.paths['/api/v1/nodes/{name}/status'].patch);
    assert.equal((await call(c, c.admin, 'POST', '/openapi/v2', { body: '{}' })).status, 405);
  });

  /** The raw bytes of a GET (call() reads text). */
  async function rawBody(path: string, accept: string): Promise<Buffer> {
    const { request } = await import('node:https');
    const url = new URL(path, c.api.url);
    return new Promise((resolve, reject) => {
      const req = request({ host: url.hostname, port: url.port, path, ca: c.ca.cert, cert: c.admin.cert, key: c.admin.key, agent: false, headers: { Accept: accept } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => resolve(Buffer.concat(chunks)));
      });
      req.on('error', reject);
      req.end();
    });
  }
});
