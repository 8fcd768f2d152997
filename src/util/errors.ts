// One error type for the whole project: a reason that maps one way to an HTTP Status, a gRPC code and a CLI exit code.

export type Reason =
  | 'BadRequest'
  | 'Invalid'
  | 'Unauthorized'
  | 'Forbidden'
  | 'NotFound'
  | 'AlreadyExists'
  | 'Conflict'
  | 'RequestEntityTooLarge'
  | 'UnsupportedMediaType'
  | 'Unavailable'
  | 'Timeout'
  | 'Internal';

interface ReasonMapping {
  http: number;
  grpc: number; // grpc status code number
  exit: number; // CLI exit code
}

const MAPPING: Record<Reason, ReasonMapping> = {
  BadRequest: { http: 400, grpc: 3 /* INVALID_ARGUMENT */, exit: 2 },
  Invalid: { http: 422, grpc: 3 /* INVALID_ARGUMENT */, exit: 2 },
  Unauthorized: { http: 401, grpc: 16 /* UNAUTHENTICATED */, exit: 3 },
  Forbidden: { http: 403, grpc: 7 /* PERMISSION_DENIED */, exit: 3 },
  NotFound: { http: 404, grpc: 5 /* NOT_FOUND */, exit: 4 },
  AlreadyExists: { http: 409, grpc: 6 /* ALREADY_EXISTS */, exit: 5 },
  Conflict: { http: 409, grpc: 9 /* FAILED_PRECONDITION */, exit: 5 },
  RequestEntityTooLarge: { http: 413, grpc: 8 /* RESOURCE_EXHAUSTED */, exit: 2 },
  UnsupportedMediaType: { http: 415, grpc: 3 /* INVALID_ARGUMENT */, exit: 2 },
  Unavailable: { http: 503, grpc: 14 /* UNAVAILABLE */, exit: 6 },
  Timeout: { http: 504, grpc: 4 /* DEADLINE_EXCEEDED */, exit: 7 },
  Internal: { http: 500, grpc: 13 /* INTERNAL */, exit: 1 },
};

export class TrustplaneError extends Error {
  readonly reason: Reason;
  /** What the user can do about it, shown after the message. */
  readonly hint?: string;

  constructor(reason: Reason, message: string, hint?: string) {
    super(message);
    this.name = 'TrustplaneError';
    this.reason = reason;
    this.hint = hint;
  }

  get httpStatus(): number {
    return MAPPING[this.reason].http;
  }
  get grpcCode(): number {
    return MAPPING[this.reason].grpc;
  }
  get exitCode(): number {
    return MAPPING[this.reason].exit;
  }
}

export function reasonFromHttpStatus(status: number): Reason {
  for (const [reason, m] of Object.entries(MAPPING) as [Reason, ReasonMapping][]) {
    if (m.http === status) return reason;
  }
  return status >= 500 ? 'Internal' : 'BadRequest';
}

export function exitCodeOf(reason: Reason): number {
  return MAPPING[reason].exit;
}

export function isReason(value: unknown): value is Reason {
  return typeof value === 'string' && value in MAPPING;
}

/** Shorthands so that call sites read as the decision they make. */
export const invalid = (msg: string, hint?: string) => new TrustplaneError('Invalid', msg, hint);
export const badRequest = (msg: string, hint?: string) => new TrustplaneError('BadRequest', msg, hint);
export const forbidden = (msg: string, hint?: string) => new TrustplaneError('Forbidden', msg, hint);
export const notFound = (msg: string, hint?: string) => new TrustplaneError('NotFound', msg, hint);
export const conflict = (msg: string, hint?: string) => new TrustplaneError('Conflict', msg, hint);
