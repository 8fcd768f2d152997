// The decoded shapes of the etcd requests this server reads (proto-loader output: int64 as strings, enums as names).

export interface RangeRequest {
  key: Buffer;
  range_end: Buffer;
  limit: string;
  revision: string;
  sort_order: 'NONE' | 'ASCEND' | 'DESCEND';
  sort_target: 'KEY' | 'VERSION' | 'CREATE' | 'MOD' | 'VALUE';
  serializable: boolean;
  keys_only: boolean;
  count_only: boolean;
  min_mod_revision: string;
  max_mod_revision: string;
  min_create_revision: string;
  max_create_revision: string;
}

export interface PutRequest {
  key: Buffer;
  value: Buffer;
  lease: string;
  prev_kv: boolean;
  ignore_value: boolean;
  ignore_lease: boolean;
}

export interface DeleteRangeRequest {
  key: Buffer;
  range_end: Buffer;
  prev_kv: boolean;
}

export interface RequestOp {
  request?: 'request_range' | 'request_put' | 'request_delete_range' | 'request_txn';
  request_range?: RangeRequest;
  request_put?: PutRequest;
  request_delete_range?: DeleteRangeRequest;
  request_txn?: TxnRequest;
}

export type CompareTarget = 'VERSION' | 'CREATE' | 'MOD' | 'VALUE' | 'LEASE';
export type CompareResult = 'EQUAL' | 'GREATER' | 'LESS' | 'NOT_EQUAL';

export interface Compare {
  result: CompareResult;
  target: CompareTarget;
  key: Buffer;
  range_end: Buffer;
  target_union?: 'version' | 'create_revision' | 'mod_revision' | 'value' | 'lease';
  version?: string;
  create_revision?: string;
  mod_revision?: string;
  value?: Buffer;
  lease?: string;
}

export interface TxnRequest {
  compare: Compare[];
  success: RequestOp[];
  failure: RequestOp[];
}

export interface CompactionRequest {
  revision: string;
  physical: boolean;
}

export interface LeaseGrantRequest {
  TTL: string;
  ID: string;
}

export interface LeaseIdRequest {
  ID: string;
}

export interface LeaseTimeToLiveRequest {
  ID: string;
  keys: boolean;
}

export interface WatchCreateRequest {
  key: Buffer;
  range_end: Buffer;
  start_revision: string;
  progress_notify: boolean;
  filters: Array<'NOPUT' | 'NODELETE'>;
  prev_kv: boolean;
  watch_id: string;
  fragment: boolean;
}

export interface WatchRequest {
  request_union?: 'create_request' | 'cancel_request' | 'progress_request';
  create_request?: WatchCreateRequest;
  cancel_request?: { watch_id: string };
  progress_request?: Record<string, never>;
}

export interface AlarmRequest {
  action: 'GET' | 'ACTIVATE' | 'DEACTIVATE';
  memberID: string;
  alarm: 'NONE' | 'NOSPACE' | 'CORRUPT';
}
