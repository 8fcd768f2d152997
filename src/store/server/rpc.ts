// Small adapters between gRPC calls and the store: errors to statuses, and the byte size of each request.
import * as grpc from '@grpc/grpc-js';
import { EtcdRpcError } from './errors.js';

/** Wire size of decoded request messages, recorded by the deserializer so handlers can apply etcd's request limit. */
const wireSize = new WeakMap<object, number>();

export function requestBytes(msg: object): number {
  return wireSize.get(msg) ?? 0;
}

/** A copy of `def` whose request decoders remember each message's size. */
export function withRequestSizes(def: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(def)) {
    const decode = method.requestDeserialize;
    out[name] = {
      ...method,
      requestDeserialize: (buf: Buffer) => {
        const msg = decode(buf);
        if (msg && typeof msg === 'object') wireSize.set(msg, buf.length);
        return msg;
      },
    };
  }
  return out;
}

export function toStatus(e: unknown): Partial<grpc.StatusObject> {
  if (e instanceof EtcdRpcError) return { code: e.code, details: e.message };
  return { code: grpc.status.INTERNAL, details: `etcdserver: ${(e as Error)?.message ?? String(e)}` };
}

/* eslint-disable @typescript-eslint/no-explicit-any */
export type Unary = (req: any) => unknown;

/** A unary handler from a function that returns (or resolves to) the response, or throws an EtcdRpcError. */
export function unary(fn: Unary): grpc.handleUnaryCall<any, any> {
  return (call, callback) => {
    let result: unknown;
    try {
      result = fn(call.request);
    } catch (e) {
      callback(toStatus(e) as grpc.ServiceError);
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (v) => callback(null, v),
        (e) => callback(toStatus(e) as grpc.ServiceError),
      );
    } else callback(null, result);
  };
}
