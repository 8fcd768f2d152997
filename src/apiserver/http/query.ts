// Query parameters as kube-apiserver reads them: the options of list/watch, create/update/patch and delete, decoded and validated in one place.
import { badRequestError, invalidError, type ResourceRef } from '../status.js';
import type { StatusCause } from '../types.js';

/*
 * kube-apiserver decodes query parameters into ListOptions, CreateOptions, ... with apimachinery's parameter codec
 * (runtime.Convert_Slice_string_To_*), then validates the result (apimachinery's ValidateListOptions,
 * ValidateCreateOptions, ValidatePatchOptions, ValidateDeleteOptions). A value that does not convert (an integer that is
 * not one) is a 400 BadRequest; options that convert but do not go together are a 422 Invalid "ListOptions.meta.k8s.io".
 * The first value of a repeated parameter counts, as with Go's url.Values.
 */

/**
 * A boolean parameter as apimachinery converts it (Convert_Slice_string_To_bool): absent is false, "0" and "false" in
 * any case are false, and every other value — "1", "true", "True", "t", "yes", even the empty string of `?watch=` — is
 * true. This is not strconv.ParseBool: kube-apiserver never refuses a boolean query parameter, so neither do we.
 */
export function queryBool(q: URLSearchParams, name: string): boolean | undefined {
  const v = q.get(name);
  if (v === null) return undefined;
  return !(v === '0' || v.toLowerCase() === 'false');
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** An int64 parameter as strconv.ParseInt(v, 10, 64) reads it: optional sign, decimal digits, in range; else a 400 naming it. */
export function queryInt64(q: URLSearchParams, name: string): bigint | undefined {
  const v = q.get(name);
  if (v === null) return undefined;
  if (!/^[+-]?[0-9]+$/.test(v)) throw badRequestError(`${name}: Invalid value: "${short(v)}": must be a decimal integer (strconv.ParseInt: parsing "${short(v)}": invalid syntax)`);
  const n = BigInt(v);
  if (n < INT64_MIN || n > INT64_MAX) throw badRequestError(`${name}: Invalid value: "${short(v)}": out of the range of a 64-bit integer (strconv.ParseInt: parsing "${short(v)}": value out of range)`);
  return n;
}

/** A value quoted in a message, cut so that a huge parameter does not make a huge reply. */
function short(v: string): string {
  return v.length > 64 ? `${v.slice(0, 64)}...` : v;
}

const metaRef = (kind: string): ResourceRef => ({ group: 'meta.k8s.io', resource: '', kind });

function refuse(kind: string, causes: StatusCause[]): void {
  if (causes.length) throw invalidError(metaRef(kind), '', causes);
}

export type ResourceVersionMatch = 'NotOlderThan' | 'Exact';

export interface ListOptions {
  watch: boolean;
  /** "" when not given. */
  resourceVersion: string;
  resourceVersionMatch?: ResourceVersionMatch;
  labelSelector: string | null;
  fieldSelector: string | null;
  limit?: bigint;
  continue: string;
  timeoutSeconds?: bigint;
  allowWatchBookmarks: boolean;
  /** Only on a watch: send the current objects first, then a bookmark marking their end. */
  sendInitialEvents?: boolean;
}

/** ListOptions of a GET on a collection (`forceWatch` for the deprecated /watch/ paths). */
export function listOptions(q: URLSearchParams, forceWatch = false): ListOptions {
  const o: ListOptions = {
    watch: forceWatch || (queryBool(q, 'watch') ?? false),
    resourceVersion: q.get('resourceVersion') ?? '',
    labelSelector: q.get('labelSelector'),
    fieldSelector: q.get('fieldSelector'),
    limit: queryInt64(q, 'limit'),
    continue: q.get('continue') ?? '',
    timeoutSeconds: queryInt64(q, 'timeoutSeconds'),
    allowWatchBookmarks: queryBool(q, 'allowWatchBookmarks') ?? false,
    sendInitialEvents: queryBool(q, 'sendInitialEvents'),
  };
  const match = q.get('resourceVersionMatch') ?? '';
  const causes: StatusCause[] = [];
  const field = 'resourceVersionMatch';
  if (o.watch) {
    // apimachinery's validateWatchOptions (the WatchList feature served).
    if (o.sendInitialEvents !== undefined && match !== 'NotOlderThan') {
      causes.push({ field, reason: 'FieldValueForbidden', message: 'Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan' });
    }
    if (match !== '') {
      if (o.sendInitialEvents === undefined) causes.push({ field, reason: 'FieldValueForbidden', message: 'Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided' });
      if (match !== 'NotOlderThan') causes.push({ field, reason: 'FieldValueNotSupported', message: `Unsupported value: "${short(match)}": supported values: "NotOlderThan"` });
      if (o.continue) causes.push({ field, reason: 'FieldValueForbidden', message: 'Forbidden: resourceVersionMatch is forbidden when continue is provided' });
    }
  } else {
    if (match !== '') {
      if (o.resourceVersion === '') causes.push({ field, reason: 'FieldValueForbidden', message: 'Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided' });
      if (o.continue) causes.push({ field, reason: 'FieldValueForbidden', message: 'Forbidden: resourceVersionMatch is forbidden when continue is provided' });
      if (match !== 'Exact' && match !== 'NotOlderThan') {
        causes.push({ field, reason: 'FieldValueNotSupported', message: `Unsupported value: "${short(match)}": supported values: "Exact", "NotOlderThan", ""` });
      }
      if (match === 'Exact' && o.resourceVersion === '0') causes.push({ field, reason: 'FieldValueForbidden', message: 'Forbidden: resourceVersionMatch "exact" is forbidden for resourceVersion "0"' });
    }
    if (o.sendInitialEvents !== undefined) causes.push({ field: 'sendInitialEvents', reason: 'FieldValueForbidden', message: 'Forbidden: sendInitialEvents is forbidden for list' });
  }
  refuse('ListOptions', causes);
  if (match === 'Exact' || match === 'NotOlderThan') o.resourceVersionMatch = match;
  if (o.continue) {
    // This server returns every match in one page and so never hands out a continue token: any token is not one of ours.
    throw badRequestError(`continue: Invalid value: "${short(o.continue)}": invalid continue token: this server returns every object in one page and issued no continue token; list again without continue`);
  }
  return o;
}

export type FieldValidation = 'Strict' | 'Warn' | 'Ignore';
export type WriteKind = 'CreateOptions' | 'UpdateOptions' | 'PatchOptions';

export interface WriteOptions {
  dryRun: boolean;
  /** "" when not given (kube-apiserver then names the manager after the User-Agent). */
  fieldManager: string;
  fieldValidation: FieldValidation;
  /** Only for server-side apply: take fields other managers own. */
  force?: boolean;
}

/** kube-apiserver's limit on a field manager's name. */
export const FIELD_MANAGER_MAX_LENGTH = 128;

/** As Go's unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space. */
const NOT_PRINTABLE = /[\p{C}\p{Zl}\p{Zp}]|(?! )\p{Zs}/u;

export function fieldManagerCauses(manager: string): StatusCause[] {
  const causes: StatusCause[] = [];
  if (manager.length > FIELD_MANAGER_MAX_LENGTH) {
    causes.push({ field: 'fieldManager', reason: 'FieldValueTooLong', message: `Too long: may not be more than ${FIELD_MANAGER_MAX_LENGTH} bytes` });
  }
  let i = 0;
  for (const ch of manager) {
    if (NOT_PRINTABLE.test(ch)) {
      const code = `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
      causes.push({ field: 'fieldManager', message: `Invalid value: "${short(JSON.stringify(manager).slice(1, -1))}": invalid character ${code} (at position ${i})` });
      break;
    }
    i += Buffer.byteLength(ch);
  }
  return causes;
}

export function dryRunCauses(values: unknown[]): StatusCause[] {
  if (values.every((v) => v === 'All')) return [];
  return [{ field: 'dryRun', reason: 'FieldValueNotSupported', message: `Unsupported value: ${short(JSON.stringify(values))}: supported values: "All"` }];
}

function fieldValidationCauses(v: string): StatusCause[] {
  if (v === '' || v === 'Strict' || v === 'Warn' || v === 'Ignore') return [];
  return [{ field: 'fieldValidation', reason: 'FieldValueNotSupported', message: `Unsupported value: "${short(v)}": supported values: "Ignore", "Strict", "Warn"` }];
}

/** Options of a POST, PUT or PATCH. `apply` is set for a server-side apply patch, which alone may use force and must name its manager. */
export function writeOptions(q: URLSearchParams, kind: WriteKind, apply = false): WriteOptions {
  const dryRun = q.getAll('dryRun');
  const fieldManager = q.get('fieldManager') ?? '';
  const fieldValidation = q.get('fieldValidation') ?? '';
  const force = queryBool(q, 'force');
  const causes = [...dryRunCauses(dryRun), ...fieldManagerCauses(fieldManager), ...fieldValidationCauses(fieldValidation)];
  if (kind === 'PatchOptions') {
    if (!apply && force !== undefined) causes.push({ field: 'force', reason: 'FieldValueForbidden', message: 'Forbidden: may not be specified for non-apply patch' });
    if (apply && fieldManager === '') causes.push({ field: 'fieldManager', reason: 'FieldValueRequired', message: 'Required value: is required for apply patch' });
  }
  // CreateOptions and UpdateOptions have no force: the parameter codec ignores what the type does not have.
  refuse(kind, causes);
  return { dryRun: dryRun.length > 0, fieldManager, fieldValidation: (fieldValidation || 'Warn') as FieldValidation, ...(apply ? { force: force ?? false } : {}) };
}

export type PropagationPolicy = 'Orphan' | 'Background' | 'Foreground';

export interface DeleteOptions {
  dryRun: boolean;
  gracePeriodSeconds?: bigint;
  propagationPolicy?: PropagationPolicy;
  orphanDependents?: boolean;
  preconditions: { resourceVersion?: string; uid?: string };
}

/**
 * DeleteOptions from the body when there is one (JSON, of kind DeleteOptions), else from the query, as kube-apiserver's
 * delete handler: one or the other, never both.
 */
export function deleteOptions(q: URLSearchParams, body: Record<string, unknown> | undefined): DeleteOptions {
  const causes: StatusCause[] = [];
  let o: DeleteOptions;
  if (body) {
    const wrongType = (field: string, want: string) => badRequestError(`DeleteOptions in version "v1" cannot be handled as a DeleteOptions: ${field}: expected ${want}`);
    if (body.kind !== undefined && body.kind !== 'DeleteOptions') throw badRequestError(`the kind in the data (${short(String(body.kind))}) does not match the expected kind (DeleteOptions)`);
    const dryRun = body.dryRun ?? [];
    if (!Array.isArray(dryRun)) throw wrongType('dryRun', 'a list of strings');
    const grace = body.gracePeriodSeconds;
    if (grace !== undefined && grace !== null && !Number.isSafeInteger(grace)) throw wrongType('gracePeriodSeconds', 'an integer');
    const policy = body.propagationPolicy;
    if (policy !== undefined && policy !== null && typeof policy !== 'string') throw wrongType('propagationPolicy', 'a string');
    const orphan = body.orphanDependents;
    if (orphan !== undefined && orphan !== null && typeof orphan !== 'boolean') throw wrongType('orphanDependents', 'a boolean');
    const pre = body.preconditions ?? {};
    if (typeof pre !== 'object' || pre === null || Array.isArray(pre)) throw wrongType('preconditions', 'an object');
    const { resourceVersion, uid } = pre as Record<string, unknown>;
    if ((resourceVersion !== undefined && resourceVersion !== null && typeof resourceVersion !== 'string') || (uid !== undefined && uid !== null && typeof uid !== 'string')) {
      throw wrongType('preconditions', 'resourceVersion and uid as strings');
    }
    causes.push(...dryRunCauses(dryRun));
    o = {
      dryRun: dryRun.length > 0,
      ...(typeof grace === 'number' ? { gracePeriodSeconds: BigInt(grace) } : {}),
      ...(typeof policy === 'string' ? { propagationPolicy: policy as PropagationPolicy } : {}),
      ...(typeof orphan === 'boolean' ? { orphanDependents: orphan } : {}),
      preconditions: { ...(typeof resourceVersion === 'string' ? { resourceVersion } : {}), ...(typeof uid === 'string' ? { uid } : {}) },
    };
  } else {
    const dryRun = q.getAll('dryRun');
    causes.push(...dryRunCauses(dryRun));
    const policy = q.get('propagationPolicy');
    const resourceVersion = q.get('preconditions.resourceVersion') ?? undefined;
    const uid = q.get('preconditions.uid') ?? undefined;
    o = {
      dryRun: dryRun.length > 0,
      gracePeriodSeconds: queryInt64(q, 'gracePeriodSeconds'),
      ...(policy !== null ? { propagationPolicy: policy as PropagationPolicy } : {}),
      orphanDependents: queryBool(q, 'orphanDependents'),
      preconditions: { ...(resourceVersion !== undefined ? { resourceVersion } : {}), ...(uid !== undefined ? { uid } : {}) },
    };
  }
  // apimachinery's ValidateDeleteOptions.
  if (o.orphanDependents !== undefined && o.propagationPolicy !== undefined) {
    causes.push({ field: 'propagationPolicy', message: `Invalid value: "${short(o.propagationPolicy)}": orphanDependents and deletionPropagation cannot be both set` });
  }
  if (o.propagationPolicy !== undefined && !['Foreground', 'Background', 'Orphan'].includes(o.propagationPolicy)) {
    causes.push({ field: 'propagationPolicy', reason: 'FieldValueNotSupported', message: `Unsupported value: "${short(o.propagationPolicy)}": supported values: "Foreground", "Background", "Orphan", "nil"` });
  }
  refuse('DeleteOptions', causes);
  return o;
}

/** `?pretty=`: strconv.ParseBool, a value it does not read being false (kube-apiserver's isPrettyPrint). */
export function queryPretty(q: URLSearchParams): boolean {
  return ['1', 't', 'T', 'TRUE', 'true', 'True'].includes(q.get('pretty') ?? '');
}

/** The `timeout` of a non-watch request (a Go duration such as "32s"); an unreadable one is a 400, as kube-apiserver's request deadline filter. */
export function queryTimeout(q: URLSearchParams): number | undefined {
  const v = q.get('timeout');
  if (v === null || v === '') return undefined;
  const ms = parseGoDuration(v);
  if (ms === undefined) throw badRequestError(`invalid timeout specified in the request URL: time: invalid duration "${short(v)}"`);
  return ms;
}

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go's time.ParseDuration, in milliseconds: "300ms", "-1.5h", "2h45m"; undefined when it is not one. */
export function parseGoDuration(s: string): number | undefined {
  const m = /^([+-]?)((?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|μs|ms|s|m|h))+|0)$/.exec(s);
  if (!m) return undefined;
  if (m[2] === '0') return 0;
  let total = 0;
  for (const part of m[2].matchAll(/([0-9]*\.?[0-9]*)(ns|us|µs|μs|ms|s|m|h)/g)) total += Number(part[1]) * UNIT_MS[part[2]];
  return m[1] === '-' ? -total : total;
}
