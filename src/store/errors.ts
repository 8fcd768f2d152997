// How a failed store call reads to trustplane: etcd and gRPC failures mapped one way to a TrustplaneError reason.
import { TrustplaneError, type Reason } from '../util/errors.js';

/** A compare-and-swap whose request was in flight when its connection or member failed: applied or not, unknown. */
export class StoreInDoubtError extends TrustplaneError {
  constructor(message: string, hint: string) {
    super('Unavailable', message, hint);
  }
}

/** What a failure says about retrying the call. */
export type FailureKind =
  /** The request never reached a member able to apply it: safe to send again, to this or another endpoint. */
  | 'not-delivered'
  /** The connection or the member failed with the request in flight: it may or may not have been applied. */
  | 'in-doubt'
  /** The store answered: sending it again gets the same answer. */
  | 'answered';

export interface CallFailure {
  /** gRPC status code, when one is known. */
  code?: number;
  /** The server's or the transport's own text (without the "14 UNAVAILABLE:" prefix). */
  details: string;
  kind: FailureKind;
}

// gRPC status codes.
const CANCELLED = 1;
const UNKNOWN = 2;
const INVALID_ARGUMENT = 3;
const DEADLINE_EXCEEDED = 4;
const NOT_FOUND = 5;
const ALREADY_EXISTS = 6;
const PERMISSION_DENIED = 7;
const RESOURCE_EXHAUSTED = 8;
const FAILED_PRECONDITION = 9;
const ABORTED = 10;
const OUT_OF_RANGE = 11;
const UNIMPLEMENTED = 12;
const INTERNAL = 13;
const UNAVAILABLE = 14;
const UNAUTHENTICATED = 16;

/** etcd refuses these before proposing anything, so nothing was applied. */
const REFUSED_BEFORE_APPLY = [
  'etcdserver: no leader',
  'etcdserver: not capable',
  'etcdserver: too many requests',
  'etcdserver: server stopped',
  'etcdserver: unhealthy cluster',
  // The embedded store's refusal on a read-only disk: SQLite failed before writing the commit.
  "etcdserver: write failed: the store's disk is read-only",
];

export const NO_SPACE = 'etcdserver: mvcc: database space exceeded';

/** Transport failures that happen before a request is written. */
const NOT_CONNECTED = /No connection established|ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|Failed to connect|failed to connect|Breaker is open|circuit/i;

const CODE_NAMES: Record<string, number> = {
  CANCELLED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED, RESOURCE_EXHAUSTED,
  FAILED_PRECONDITION, ABORTED, OUT_OF_RANGE, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS: 15, UNAUTHENTICATED,
};

/** etcd3's error classes that stand for a gRPC code, by class name (its errors lose the numeric code). */
const CLASS_CODES: Record<string, number> = {
  GRPCCancelledError: CANCELLED,
  GRPCUnknownError: UNKNOWN,
  GRPCInvalidArgumentError: INVALID_ARGUMENT,
  GRPCDeadlineExceededError: DEADLINE_EXCEEDED,
  GRPCNotFoundError: NOT_FOUND,
  GRPCAlreadyExistsError: ALREADY_EXISTS,
  EtcdPermissionDeniedError: PERMISSION_DENIED,
  GRPCResourceExhastedError: RESOURCE_EXHAUSTED,
  GRPCFailedPreconditionError: FAILED_PRECONDITION,
  GRPCAbortedError: ABORTED,
  GRPCOutOfRangeError: OUT_OF_RANGE,
  GRPCNotImplementedError: UNIMPLEMENTED,
  GRPCInternalError: INTERNAL,
  GRPCUnavailableError: UNAVAILABLE,
  GRPCUnauthenticatedError: UNAUTHENTICATED,
  EtcdLeaseInvalidError: NOT_FOUND,
};

/** Reads an error thrown by etcd3 or @grpc/grpc-js into a code, the server's text, and whether a retry is safe. */
export function describeFailure(e: unknown): CallFailure {
  const err = e as { message?: unknown; code?: unknown; details?: unknown; constructor?: { name?: string }; name?: string };
  const message = typeof err?.message === 'string' ? err.message : String(e);
  let code: number | undefined = typeof err?.code === 'number' ? err.code : undefined;
  let details = typeof err?.details === 'string' ? err.details : message;
  // grpc-js messages read "14 UNAVAILABLE: details"; etcd3 keeps that text but drops the code.
  const m = /^(\d+) ([A-Z_]+): ([\s\S]*)$/.exec(message);
  if (m) {
    code ??= Number(m[1]);
    details = m[3];
  }
  const className = err?.constructor?.name ?? err?.name ?? '';
  // etcd3 rewrites this one into "Lease <original message> is expired or revoked".
  if (className === 'EtcdLeaseInvalidError') return { code: NOT_FOUND, details: 'etcdserver: requested lease not found', kind: 'answered' };
  code ??= CLASS_CODES[className];
  if (code === undefined && className === 'BrokenCircuitError') code = UNAVAILABLE;
  if (code === undefined) {
    const named = /\b(UNAVAILABLE|DEADLINE_EXCEEDED|INTERNAL|CANCELLED)\b/.exec(message);
    if (named) code = CODE_NAMES[named[1]];
  }
  details = tidy(details);
  return { code, details, kind: kindOf(code, details, className) };
}

/** Transport texts carry OpenSSL's internals and timestamps; keep what a reader can act on. */
function tidy(details: string): string {
  let d = details.replace(/\.?\s*Resolution note:\s*$/, '');
  const alert = /(?:sslv3|tlsv1) alert ([a-z ]+?)(?::|$)/i.exec(d);
  if (alert) d = d.replace(/Last error: [\s\S]*$/, `Last error: the store ended the TLS handshake with "${alert[1]}"`);
  return d.trim();
}

/** Why a TLS handshake failed, in words, when the failure says so. */
export function tlsTrouble(details: string): string | undefined {
  if (/bad certificate|certificate unknown|unknown ca|certificate required|handshake failure/i.test(details)) {
    return 'the store refused the client certificate: it must be issued by the CA the store trusts for clients';
  }
  if (/self.signed|unable to (get|verify)|certificate verify failed|Hostname\/IP does not match|ERR_TLS_CERT_ALTNAME_INVALID|certificate has expired/i.test(details)) {
    return "the store's certificate did not verify against the configured CA (or does not name the endpoint's host)";
  }
  return undefined;
}

function kindOf(code: number | undefined, details: string, className: string): FailureKind {
  if (REFUSED_BEFORE_APPLY.some((t) => details.includes(t))) return 'not-delivered';
  if (className === 'BrokenCircuitError' || className === 'ClientClosedError') return 'not-delivered';
  switch (code) {
    case UNAVAILABLE:
      return NOT_CONNECTED.test(details) ? 'not-delivered' : 'in-doubt';
    case DEADLINE_EXCEEDED:
    case CANCELLED:
    case UNKNOWN:
    case INTERNAL:
    case ABORTED:
      return 'in-doubt';
    case undefined:
      // Not a gRPC status at all: a socket or TLS failure surfaced before any call was made.
      return NOT_CONNECTED.test(details) ? 'not-delivered' : 'answered';
    default:
      return 'answered';
  }
}

export const COMPACTED = 'etcdserver: mvcc: required revision has been compacted';

/** A read or watch asked for history the store has compacted away: re-read the current state and go on from there. */
export class StoreCompactedError extends TrustplaneError {
  constructor(
    readonly endpoint: string,
    readonly requestedRevision: bigint | undefined,
    /** The compacted revision, when the store said (a watch does; a range does not). */
    readonly compactRevision: bigint | undefined,
  ) {
    super(
      'Conflict',
      `store at ${endpoint}: revision ${requestedRevision ?? '?'} has been compacted` + (compactRevision ? ` (history starts at ${compactRevision})` : ''),
      're-read the keys and watch from the revision that read returns',
    );
    this.name = 'StoreCompactedError';
  }
}

/** The reason an answered failure maps to, from etcd's own code and text. */
export function reasonOf(f: CallFailure): Reason {
  if (f.details.includes('etcdserver: request is too large')) return 'RequestEntityTooLarge';
  switch (f.code) {
    case INVALID_ARGUMENT:
      return 'BadRequest';
    case NOT_FOUND:
      return 'NotFound';
    case ALREADY_EXISTS:
      return 'AlreadyExists';
    case FAILED_PRECONDITION:
    case ABORTED:
      return 'Conflict';
    case OUT_OF_RANGE:
      return f.details.includes('compacted') ? 'Conflict' : 'BadRequest';
    case RESOURCE_EXHAUSTED:
      return /larger than max|too large/i.test(f.details) ? 'RequestEntityTooLarge' : 'Unavailable';
    case UNAUTHENTICATED:
      return 'Unauthorized';
    case PERMISSION_DENIED:
      return 'Forbidden';
    case UNAVAILABLE:
      return 'Unavailable';
    case DEADLINE_EXCEEDED:
      return 'Timeout';
    default:
      return 'Internal';
  }
}

const NO_SPACE_HINT = "free space on the store's disk (or raise etcd's --quota-backend-bytes and disarm the NOSPACE alarm); writes resume by themselves, reads work meanwhile";

const HINTS: Partial<Record<Reason, string>> = {
  Unavailable:
    'check that the store is running and reachable at the configured endpoints, and that the client certificate and CA are the ones it expects',
  Timeout: 'the store is slow or has lost its leader; retry, or raise the store timeout',
  RequestEntityTooLarge: 'store values are limited to 1.5 MiB per request; keep large objects out of the store',
  Unauthorized: 'the store refused the client certificate; check that it is issued by the CA the store trusts',
  Forbidden: 'the store refused the client certificate; check that it is issued by the CA the store trusts',
};

/** A TrustplaneError for an answered failure of `op` at `endpoint`. */
export function toTrustplaneError(op: string, endpoint: string, f: CallFailure): TrustplaneError {
  if (f.details.includes(COMPACTED)) return new StoreCompactedError(endpoint, undefined, undefined);
  const reason = reasonOf(f);
  // The API server shows only the message: it names the cause, not just etcd's words.
  if (f.details.includes(NO_SPACE)) return new TrustplaneError(reason, `store ${op} at ${endpoint}: ${f.details} (the store is out of disk space; nothing was written)`, NO_SPACE_HINT);
  return new TrustplaneError(reason, `store ${op} at ${endpoint}: ${f.details}`, HINTS[reason]);
}
