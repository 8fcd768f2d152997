// Query parameters as kube-apiserver reads them (apimachinery's parameter codec and option validation), table by table.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deleteOptions, listOptions, parseGoDuration, queryBool, queryInt64, queryPretty, queryTimeout, writeOptions } from '../../src/apiserver/http/query.js';
import { ApiError, toStatus } from '../../src/apiserver/status.js';

const q = (s: string) => new URLSearchParams(s);

/** The Status a call throws: code, reason and message. */
function refusal(f: () => unknown): { code: number; reason: string; message: string } {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof ApiError, `threw ${String(e)}`);
    const s = toStatus(e);
    return { code: s.code, reason: s.reason, message: s.message };
  }
  assert.fail('expected a refusal');
}

describe('query parameters', () => {
  it('booleans: absent, "0" and "false" in any case are false; every other value is true (Convert_Slice_string_To_bool)', () => {
    const table: Array<[string, boolean | undefined]> = [
      ['', undefined],
      ['watch=true', true],
      ['watch=True', true],
      ['watch=TRUE', true],
      ['watch=1', true],
      ['watch=t', true],
      ['watch=T', true],
      ['watch=yes', true],
      ['watch=', true],
      ['watch', true],
      ['watch=false', false],
      ['watch=False', false],
      ['watch=FALSE', false],
      ['watch=fAlSe', false],
      ['watch=0', false],
      // Only the first value of a repeated parameter counts, as url.Values in Go.
      ['watch=0&watch=1', false],
      ['watch=1&watch=0', true],
    ];
    for (const [query, want] of table) assert.equal(queryBool(q(query), 'watch'), want, query);
  });

  it('int64s as strconv.ParseInt: sign and digits in range; anything else a 400 naming the parameter', () => {
    const good: Array<[string, bigint]> = [['0', 0n], ['42', 42n], ['+7', 7n], ['-5', -5n], ['9223372036854775807', 2n ** 63n - 1n], ['-9223372036854775808', -(2n ** 63n)], ['007', 7n]];
    for (const [v, want] of good) assert.equal(queryInt64(q(`limit=${v.replace('+', '%2B')}`), 'limit'), want, v);
    for (const v of ['', 'abc', '1.5', '1e3', ' 1', '0x10', '9223372036854775808', '-9223372036854775809', '1'.repeat(400), '--1']) {
      const r = refusal(() => queryInt64(q(`limit=${encodeURIComponent(v)}`), 'limit'));
      assert.equal(r.code, 400, v);
      assert.equal(r.reason, 'BadRequest');
      assert.match(r.message, /^limit: Invalid value: /, v);
      assert.ok(r.message.length < 400, 'a huge value is cut in the message');
    }
  });

  it('list and watch options: what converts and validates', () => {
    const ok: Array<[string, Partial<ReturnType<typeof listOptions>>]> = [
      ['', { watch: false, resourceVersion: '', allowWatchBookmarks: false }],
      ['watch=True&resourceVersion=5', { watch: true, resourceVersion: '5' }],
      ['resourceVersion=5&resourceVersionMatch=Exact', { resourceVersionMatch: 'Exact' }],
      ['resourceVersion=0&resourceVersionMatch=NotOlderThan', { resourceVersionMatch: 'NotOlderThan' }],
      ['watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true', { sendInitialEvents: true, allowWatchBookmarks: true }],
      ['watch=1&sendInitialEvents=false&resourceVersionMatch=NotOlderThan', { sendInitialEvents: false }],
      ['limit=10&timeoutSeconds=30', { limit: 10n, timeoutSeconds: 30n }],
      ['labelSelector=a%3Db&fieldSelector=metadata.name%3Dx', { labelSelector: 'a=b', fieldSelector: 'metadata.name=x' }],
    ];
    for (const [query, want] of ok) {
      const got = listOptions(q(query));
      for (const [k, v] of Object.entries(want)) assert.deepEqual(got[k as keyof typeof got], v, `${query}: ${k}`);
    }
    const bad: Array<[string, number, RegExp]> = [
      ['limit=ten', 400, /^limit: Invalid value: "ten"/],
      ['timeoutSeconds=1s', 400, /^timeoutSeconds: Invalid value: "1s"/],
      ['resourceVersionMatch=Exact', 422, /^ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided/],
      ['resourceVersion=1&resourceVersionMatch=Newest', 422, /resourceVersionMatch: Unsupported value: "Newest": supported values: "Exact", "NotOlderThan", ""/],
      ['resourceVersion=0&resourceVersionMatch=Exact', 422, /resourceVersionMatch "exact" is forbidden for resourceVersion "0"/],
      ['sendInitialEvents=true', 422, /sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list/],
      ['watch=true&sendInitialEvents=true', 422, /sendInitialEvents requires setting resourceVersionMatch to NotOlderThan/],
      ['watch=true&resourceVersionMatch=NotOlderThan', 422, /resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided/],
      ['watch=true&sendInitialEvents=true&resourceVersionMatch=Exact', 422, /resourceVersionMatch: Unsupported value: "Exact": supported values: "NotOlderThan"/],
      ['continue=abc', 400, /^continue: Invalid value: "abc": invalid continue token/],
    ];
    for (const [query, code, message] of bad) {
      const r = refusal(() => listOptions(q(query)));
      assert.equal(r.code, code, query);
      assert.equal(r.reason, code === 400 ? 'BadRequest' : 'Invalid', query);
      assert.match(r.message, message, query);
    }
  });

  it('create, update and patch options', () => {
    assert.deepEqual(writeOptions(q(''), 'CreateOptions'), { dryRun: false, fieldManager: '', fieldValidation: 'Warn' });
    assert.deepEqual(writeOptions(q('dryRun=All&fieldManager=kubectl-create&fieldValidation=Strict'), 'CreateOptions'), { dryRun: true, fieldManager: 'kubectl-create', fieldValidation: 'Strict' });
    assert.deepEqual(writeOptions(q('fieldManager=m&force=true'), 'PatchOptions', true), { dryRun: false, fieldManager: 'm', fieldValidation: 'Warn', force: true });
    const bad: Array<[string, 'CreateOptions' | 'UpdateOptions' | 'PatchOptions', boolean, RegExp]> = [
      ['dryRun=Yes', 'CreateOptions', false, /^CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: \["Yes"\]: supported values: "All"/],
      ['dryRun=All&dryRun=x', 'UpdateOptions', false, /^UpdateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value/],
      ['fieldValidation=strict', 'CreateOptions', false, /fieldValidation: Unsupported value: "strict": supported values: "Ignore", "Strict", "Warn"/],
      [`fieldManager=${'m'.repeat(129)}`, 'CreateOptions', false, /fieldManager: Too long: may not be more than 128 bytes/],
      ['fieldManager=a%00b', 'UpdateOptions', false, /fieldManager: Invalid value: .*invalid character U\+0000 \(at position 1\)/],
      ['fieldManager=a%0Ab', 'PatchOptions', false, /invalid character U\+000A/],
      ['force=true', 'PatchOptions', false, /^PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch/],
      ['', 'PatchOptions', true, /fieldManager: Required value: is required for apply patch/],
    ];
    for (const [query, kind, apply, message] of bad) {
      const r = refusal(() => writeOptions(q(query), kind, apply));
      assert.equal(r.code, 422, query);
      assert.equal(r.reason, 'Invalid', query);
      assert.match(r.message, message, query);
    }
    // A printable name with spaces and non-ASCII letters is fine.
    assert.equal(writeOptions(q('fieldManager=my%20tool%20%C3%A9'), 'CreateOptions').fieldManager, 'my tool é');
  });

  it('delete options: from the body when there is one, else from the query; validated as ValidateDeleteOptions', () => {
    assert.deepEqual(deleteOptions(q('dryRun=All&gracePeriodSeconds=0&propagationPolicy=Background'), undefined), {
      dryRun: true, gracePeriodSeconds: 0n, propagationPolicy: 'Background', orphanDependents: undefined, preconditions: {},
    });
    const body = deleteOptions(q('dryRun=Nonsense'), { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Foreground', preconditions: { resourceVersion: '5', uid: 'u' } });
    assert.deepEqual(body, { dryRun: false, propagationPolicy: 'Foreground', preconditions: { resourceVersion: '5', uid: 'u' } }, 'the query is not read when a body is given');
    const bad: Array<[string, Record<string, unknown> | undefined, number, RegExp]> = [
      ['propagationPolicy=Sideways', undefined, 422, /^DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "Sideways"/],
      ['propagationPolicy=Orphan&orphanDependents=true', undefined, 422, /orphanDependents and deletionPropagation cannot be both set/],
      ['gracePeriodSeconds=soon', undefined, 400, /^gracePeriodSeconds: Invalid value: "soon"/],
      ['', { dryRun: ['Everything'] }, 422, /dryRun: Unsupported value: \["Everything"\]/],
      ['', { dryRun: 'All' }, 400, /dryRun: expected a list of strings/],
      ['', { gracePeriodSeconds: 'x' }, 400, /gracePeriodSeconds: expected an integer/],
      ['', { preconditions: [] }, 400, /preconditions: expected an object/],
      ['', { preconditions: { uid: 5 } }, 400, /preconditions: expected resourceVersion and uid as strings/],
      ['', { kind: 'Node' }, 400, /the kind in the data \(Node\) does not match the expected kind \(DeleteOptions\)/],
    ];
    for (const [query, b, code, message] of bad) {
      const r = refusal(() => deleteOptions(q(query), b));
      assert.equal(r.code, code, `${query} ${JSON.stringify(b)}`);
      assert.match(r.message, message);
    }
  });

  it('pretty as strconv.ParseBool, an unreadable value false; timeout as a Go duration, an unreadable one a 400', () => {
    for (const [v, want] of [['true', true], ['1', true], ['T', true], ['yes', false], ['false', false], ['', false]] as const) assert.equal(queryPretty(q(`pretty=${v}`)), want, v);
    const durations: Array<[string, number | undefined]> = [['32s', 32_000], ['5s', 5000], ['1m30s', 90_000], ['1.5h', 5_400_000], ['300ms', 300], ['0', 0], ['-2s', -2000], ['10', undefined], ['s', undefined], ['1d', undefined], ['', undefined]];
    for (const [v, want] of durations) assert.equal(parseGoDuration(v), want, v);
    assert.equal(queryTimeout(q('timeout=32s')), 32_000);
    assert.equal(queryTimeout(q('')), undefined);
    const r = refusal(() => queryTimeout(q('timeout=soon')));
    assert.equal(r.code, 400);
    assert.match(r.message, /invalid timeout specified in the request URL: time: invalid duration "soon"/);
  });
});
