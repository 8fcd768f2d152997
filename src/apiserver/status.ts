// Errors as Kubernetes Status objects: one ApiError (a TrustplaneError with Status details) and the messages kubectl knows.
import { TrustplaneError, type Reason } from '../util/errors.js';
import type { Status, StatusCause, StatusDetails } from './types.js';

/** What a resource is called in messages: "certificatesigningrequests.certificates.k8s.io", "nodes". */
export interface ResourceRef {
  group: string;
  resource: string;
  kind: string;
}

export const qualified = (r: ResourceRef) => (r.group ? `${r.resource}.${r.group}` : r.resource);

/**
 * A TrustplaneError that also carries what a Status needs. `statusReason`/`code` cover the few Status reasons the project's
 * Reason has no name for (Expired 410, MethodNotAllowed 405, NotAcceptable 406).
 */
export class ApiError extends TrustplaneError {
  constructor(
    reason: Reason,
    message: string,
    readonly details?: StatusDetails,
    readonly statusReason?: string,
    readonly code?: number,
  ) {
    super(reason, message);
    this.name = 'ApiError';
  }
}

export function toStatus(e: unknown): Status {
  if (e instanceof ApiError) {
    return status(e.code ?? e.httpStatus, e.statusReason ?? e.reason, e.message, e.details);
  }
  if (e instanceof TrustplaneError) {
    return status(e.httpStatus, e.reason === 'Internal' ? 'InternalError' : e.reason === 'Unavailable' ? 'ServiceUnavailable' : e.reason, e.message);
  }
  return status(500, 'InternalError', `Internal error occurred: ${(e as Error)?.message ?? String(e)}`);
}

function status(code: number, reason: string, message: string, details?: StatusDetails): Status {
  const s: Status = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
  if (details) s.details = details;
  return s;
}

const det = (r: ResourceRef, name?: string): StatusDetails => ({ ...(name ? { name } : {}), group: r.group, kind: r.resource });

export const notFoundError = (r: ResourceRef, name: string) =>
  new ApiError('NotFound', `${qualified(r)} "${name}" not found`, det(r, name));

export const alreadyExistsError = (r: ResourceRef, name: string) =>
  new ApiError('AlreadyExists', `${qualified(r)} "${name}" already exists`, det(r, name));

export const conflictError = (r: ResourceRef, name: string, why = 'the object has been modified; please apply your changes to the latest version and try again') =>
  new ApiError('Conflict', `Operation cannot be fulfilled on ${qualified(r)} "${name}": ${why}`, det(r, name));

export const invalidError = (r: ResourceRef, name: string, causes: StatusCause[]) =>
  new ApiError(
    'Invalid',
    `${r.kind}${r.group ? `.${r.group}` : ''} "${name}" is invalid: ${causes.map((c) => (c.field ? `${c.field}: ${c.message}` : c.message)).join(', ')}`,
    { name, group: r.group, kind: r.kind, causes: causes.map((c) => ({ reason: c.reason ?? 'FieldValueInvalid', message: c.message, field: c.field })) },
  );

export const badRequestError = (message: string) => new ApiError('BadRequest', message);

export const unauthorizedError = (message = 'Unauthorized') => new ApiError('Unauthorized', message);

export const methodNotAllowedError = (method: string) =>
  new ApiError('BadRequest', `the server does not allow this method on the requested resource (${method})`, undefined, 'MethodNotAllowed', 405);

export const expiredError = (message: string) => new ApiError('Conflict', message, undefined, 'Expired', 410);

/** A read at a revision the store has not reached yet, as kube-apiserver words it (504 Timeout, retry in a second). */
export const tooLargeResourceVersionError = (asked: bigint, current: bigint) =>
  new ApiError('Timeout', `Too large resource version: ${asked}, current: ${current}`, {
    causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }],
    retryAfterSeconds: 1,
  });

export const unsupportedMediaTypeError = (type: string, supported: string[]) =>
  new ApiError('UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: ${supported.join(', ')}`, {
    causes: [{ reason: 'UnsupportedMediaType', message: `unsupported media type "${type}"` }],
  });

export const tooLargeError = (limit: number) =>
  new ApiError('RequestEntityTooLarge', `the request body is too large: limit is ${limit} bytes`, {
    causes: [{ reason: 'RequestEntityTooLarge', message: `limit is ${limit} bytes` }],
  });

/** As kube-apiserver words an authorization refusal; `why` is the authorizer's reason, appended after a colon. */
export function forbiddenError(
  user: string,
  a: { verb: string; group: string; resource: string; subresource?: string; name?: string; namespace?: string },
  why?: string,
): ApiError {
  const r: ResourceRef = { group: a.group, resource: a.resource, kind: a.resource };
  const res = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const scope = a.namespace ? `in the namespace "${a.namespace}"` : 'at the cluster scope';
  const subject = a.name ? `${qualified(r)} "${a.name}"` : qualified(r);
  const msg = `${subject} is forbidden: User "${user}" cannot ${a.verb} resource "${res}" in API group "${a.group}" ${scope}${why ? `: ${why}` : ''}`;
  return new ApiError('Forbidden', msg, det(r, a.name));
}
