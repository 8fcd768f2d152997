// How store call failures are read: gRPC code, text, whether a retry is safe, and the reason a user sees.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GRPCUnavailableError, EtcdLeaseInvalidError, GRPCOutOfRangeError, GRPCInvalidArgumentError } from 'etcd3';
import { describeFailure, reasonOf, tlsTrouble, toTrustplaneError, StoreCompactedError } from '../../../src/store/errors.js';
import { prefixEnd } from '../../../src/store/keys.js';

test('transport failures: not delivered when no connection was made, in doubt when it broke mid-call', () => {
  const refused = describeFailure(new GRPCUnavailableError('14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED 127.0.0.1:2. Resolution note: '));
  assert.deepEqual(refused, { code: 14, details: 'No connection established. Last error: connect ECONNREFUSED 127.0.0.1:2', kind: 'not-delivered' });
  assert.equal(describeFailure(new GRPCUnavailableError('14 UNAVAILABLE: Connection dropped')).kind, 'in-doubt');
  assert.equal(describeFailure(new GRPCUnavailableError('14 UNAVAILABLE: etcdserver: leader changed')).kind, 'in-doubt');
  assert.equal(describeFailure(new GRPCUnavailableError('14 UNAVAILABLE: etcdserver: no leader')).kind, 'not-delivered');
  assert.equal(describeFailure(Object.assign(new Error('4 DEADLINE_EXCEEDED: Deadline exceeded'), { code: 4 })).kind, 'in-doubt');
});

test('answers from the store map to one reason each', () => {
  const cases: Array<[Error, string]> = [
    [new GRPCInvalidArgumentError('3 INVALID_ARGUMENT: etcdserver: key is not provided'), 'BadRequest'],
    [new GRPCInvalidArgumentError('3 INVALID_ARGUMENT: etcdserver: request is too large'), 'RequestEntityTooLarge'],
    [new GRPCOutOfRangeError('11 OUT_OF_RANGE: etcdserver: mvcc: required revision has been compacted'), 'Conflict'],
    [new GRPCOutOfRangeError('11 OUT_OF_RANGE: etcdserver: mvcc: required revision is a future revision'), 'BadRequest'],
    [Object.assign(new Error('9 FAILED_PRECONDITION: etcdserver: lease already exists'), { code: 9 }), 'Conflict'],
    [Object.assign(new Error('8 RESOURCE_EXHAUSTED: Received message larger than max (3145738 vs. 2621440)'), { code: 8 }), 'RequestEntityTooLarge'],
  ];
  for (const [e, reason] of cases) {
    const f = describeFailure(e);
    assert.equal(f.kind, 'answered', e.message);
    assert.equal(reasonOf(f), reason, e.message);
  }
  // etcd3 rewrites "lease not found" into its own sentence; the server's text is restored.
  const lease = describeFailure(new EtcdLeaseInvalidError('5 NOT_FOUND: etcdserver: requested lease not found'));
  assert.deepEqual(lease, { code: 5, details: 'etcdserver: requested lease not found', kind: 'answered' });
  const err = toTrustplaneError('put /a', 'https://127.0.0.1:1', lease);
  assert.equal(err.reason, 'NotFound');
  assert.equal(err.message, 'store put /a at https://127.0.0.1:1: etcdserver: requested lease not found');
  const compacted = toTrustplaneError('get /a', 'https://h:1', describeFailure(new GRPCOutOfRangeError('11 OUT_OF_RANGE: etcdserver: mvcc: required revision has been compacted')));
  assert.ok(compacted instanceof StoreCompactedError);
});

test('TLS refusals read as what to fix', () => {
  const f = describeFailure(
    new GRPCUnavailableError(
      '14 UNAVAILABLE: No connection established. Last error: 80:error:0A000412:SSL routines:ssl3_read_bytes:sslv3 alert bad certificate:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:1601:SSL alert number 42\n (2026-01-01T00:00:00.000Z)',
    ),
  );
  assert.equal(f.details, 'No connection established. Last error: the store ended the TLS handshake with "bad certificate"');
  assert.equal(f.kind, 'not-delivered');
  assert.match(tlsTrouble(f.details) ?? '', /refused the client certificate/);
  assert.match(tlsTrouble('Last error: self-signed certificate in certificate chain') ?? '', /did not verify/);
});

test('prefixEnd', () => {
  assert.deepEqual(prefixEnd(Buffer.from('/a/')), Buffer.from('/a0'));
  assert.deepEqual(prefixEnd(Buffer.from([0x61, 0xff])), Buffer.from([0x62]));
  assert.deepEqual(prefixEnd(Buffer.from([0xff, 0xff])), Buffer.from([0]));
});
