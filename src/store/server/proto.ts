// Loads the checked-in etcd 3.4 protos, found from this module's location both in the source tree and in dist/.
import { loadSync, type PackageDefinition } from '@grpc/proto-loader';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const RPC_PROTO = join('etcdserverpb', 'rpc.proto');

/**
 * The folder holding etcdserverpb/, mvccpb/ and authpb/. This module runs as src/store/server/proto.ts
 * or dist/src/store/server/proto.js (in a checkout or an installed package); the protos stay in src/store/proto,
 * so walk up to the package root that has them.
 */
export function protoDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'src', 'store', 'proto');
    if (existsSync(join(candidate, RPC_PROTO))) return candidate;
    const up = dirname(dir);
    if (up === dir) throw new Error(`etcd protos not found above ${dirname(fileURLToPath(import.meta.url))} (expected src/store/proto/${RPC_PROTO})`);
    dir = up;
  }
}

let cached: PackageDefinition | undefined;

/**
 * int64 as decimal strings (lease IDs and uint64 member IDs exceed 2^53), enums as names,
 * bytes as Buffers, absent scalars at their defaults, oneofs named by a virtual field.
 */
export function etcdPackageDefinition(): PackageDefinition {
  cached ??= loadSync(RPC_PROTO, {
    includeDirs: [protoDir()],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return cached;
}
