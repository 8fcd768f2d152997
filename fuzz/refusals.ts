// What a fuzz target may see besides success: the refusals each layer is allowed to answer hostile input with.
import { toStatus } from '../src/apiserver/status.js';
import { EtcdRpcError } from '../src/store/server/errors.js';
import { TrustplaneError } from '../src/util/errors.js';

/** A refusal the caller sees as a 4xx: a TrustplaneError (ApiError included) whose Status code is 400-499. */
export function isClientRefusal(e: unknown): boolean {
  if (!(e instanceof TrustplaneError)) return false;
  const code = toStatus(e).code;
  return code >= 400 && code < 500;
}

/** etcd's refusal of a request it decoded: an EtcdRpcError, answered as a gRPC status. */
export function isEtcdRefusal(e: unknown): boolean {
  return e instanceof EtcdRpcError;
}

/**
 * Runs `step`; a refusal that `allowed` accepts is the input's own fault and ends the run quietly. Anything else — a
 * TypeError, a RangeError from a stack overflow, a 5xx — is a finding, rethrown so that the fuzzer records the input.
 */
export function refusalsOnly<T>(step: () => T, allowed: (e: unknown) => boolean): T | undefined {
  try {
    return step();
  } catch (e) {
    if (allowed(e)) return undefined;
    if (e instanceof TrustplaneError) {
      // A refusal this layer may not answer with (a 5xx, or another layer's kind): say which, keeping where it was thrown.
      const finding = new Error(`unexpected refusal ${toStatus(e).code} ${e.reason}: ${e.message}`);
      finding.stack = `${finding.message}\n${e.stack?.split('\n').slice(1).join('\n') ?? ''}`;
      throw finding;
    }
    throw e;
  }
}
