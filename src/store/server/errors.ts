// The etcd v3 errors this server returns: the exact gRPC code and text etcd 3.4 sends, since clients match on the text.
import { status } from '@grpc/grpc-js';

/** An error that reaches the client as a gRPC status with etcd's wording. */
export class EtcdRpcError extends Error {
  readonly code: status;
  constructor(code: status, message: string) {
    super(message);
    this.name = 'EtcdRpcError';
    this.code = code;
  }
}

const e = (code: status, message: string) => () => new EtcdRpcError(code, message);

/** Constructors named after etcd's rpctypes.ErrGRPC* values. */
export const Errors = {
  emptyKey: e(status.INVALID_ARGUMENT, 'etcdserver: key is not provided'),
  keyNotFound: e(status.INVALID_ARGUMENT, 'etcdserver: key not found'),
  valueProvided: e(status.INVALID_ARGUMENT, 'etcdserver: value is provided'),
  leaseProvided: e(status.INVALID_ARGUMENT, 'etcdserver: lease is provided'),
  tooManyOps: e(status.INVALID_ARGUMENT, 'etcdserver: too many operations in txn request'),
  duplicateKey: e(status.INVALID_ARGUMENT, 'etcdserver: duplicate key given in txn request'),
  compacted: e(status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted'),
  futureRev: e(status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision'),
  leaseNotFound: e(status.NOT_FOUND, 'etcdserver: requested lease not found'),
  leaseExists: e(status.FAILED_PRECONDITION, 'etcdserver: lease already exists'),
  leaseTTLTooLarge: e(status.OUT_OF_RANGE, 'etcdserver: too large lease TTL'),
  requestTooLarge: e(status.INVALID_ARGUMENT, 'etcdserver: request is too large'),
  stopped: e(status.UNAVAILABLE, 'etcdserver: server stopped'),
  notLeader: e(status.FAILED_PRECONDITION, 'etcdserver: not leader'),
  // etcd's NOSPACE answer; here it means the disk under the SQLite file is full (no quota of our own).
  noSpace: e(status.RESOURCE_EXHAUSTED, 'etcdserver: mvcc: database space exceeded'),
  /** Not an etcd text (etcd stops on a read-only disk); worded like one so clients see it as a refusal before apply. */
  readOnly: (path: string) =>
    new EtcdRpcError(status.UNAVAILABLE, `etcdserver: write failed: the store's disk is read-only (${path}); nothing was applied`),
};

/** Watch cancel reasons (sent in WatchResponse.cancel_reason, not as a status). */
export const WatchErrors = {
  emptyRange: 'mvcc: watcher range is empty',
  duplicateId: 'mvcc: duplicate watch ID provided on the WatchStream',
};
