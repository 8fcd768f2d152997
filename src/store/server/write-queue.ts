// Group commit: writes that arrive in the same turn of the event loop share one SQLite transaction and one fsync.
import { status } from '@grpc/grpc-js';
import { closeSync, openSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Applier, WriteOp } from './applier.js';
import { Errors, EtcdRpcError } from './errors.js';
import type { Lessor } from './lessor.js';
import type { MvccStore } from './mvcc.js';
import type { StoreEvent } from './types.js';

interface Pending {
  op: WriteOp;
  resolve(v: unknown): void;
  reject(e: Error): void;
}

/**
 * Each write keeps its own revision; all of a batch commit together, and none is acknowledged before the commit
 * returns (with synchronous=FULL that is after fsync). A refused write (EtcdRpcError) changes nothing and does
 * not disturb the others. If the commit itself fails, the whole batch is refused and memory is reloaded from disk.
 */
export class WriteQueue {
  private queue: Pending[] = [];
  private scheduled = false;
  private closed = false;
  /** Committed batches, for tests and status. */
  batches = 0;
  /** The last commit failed for lack of disk space (etcd's NOSPACE alarm); cleared by the next commit that succeeds. */
  noSpace = false;

  constructor(
    private readonly store: MvccStore,
    private readonly lessor: Lessor,
    private readonly applier: Applier,
    private readonly onCommit: (events: StoreEvent[]) => void,
  ) {}

  submit<T>(op: WriteOp): Promise<T> {
    if (this.closed) return Promise.reject(Errors.stopped());
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ op, resolve: resolve as (v: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Commits what is queued now; used by close() so no accepted write is dropped. */
  flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    const results: Array<{ ok: true; value: unknown } | { ok: false; error: Error }> = [];
    try {
      this.store.db.transaction(() => {
        for (const p of batch) {
          const changesBefore = this.store.pendingChanges;
          const revBefore = this.store.rev;
          try {
            results.push({ ok: true, value: this.applier.apply(p.op) });
          } catch (e) {
            // A refusal must come before any change; anything else fails the batch.
            if (!(e instanceof EtcdRpcError) || this.store.pendingChanges !== changesBefore || this.store.rev !== revBefore) throw e;
            results.push({ ok: false, error: e });
          }
        }
        this.store.persistMeta();
      })();
    } catch (e) {
      const failure = commitFailure(e, this.store.path);
      this.noSpace = failure.code === status.RESOURCE_EXHAUSTED;
      try {
        this.store.load();
        this.lessor.reload();
      } catch {
        // Reads of a full or read-only disk still work; if even they fail, the next batch reloads again.
      }
      for (const p of batch) p.reject(failure);
      return;
    }
    this.noSpace = false;
    this.batches += 1;
    const events = this.store.takeEvents();
    batch.forEach((p, i) => {
      const r = results[i];
      if (r.ok) p.resolve(r.value);
      else p.reject(r.error);
    });
    if (events.length > 0) this.onCommit(events);
  }

  close(): void {
    this.flush();
    this.closed = true;
  }
}

/**
 * What a client is told when a batch did not commit. A full disk (SQLITE_FULL) and a read-only one (EROFS, seen as
 * SQLITE_READONLY or a failed write) stop SQLite before the commit record is on disk, so nothing was applied and the
 * client may retry once space or write access returns; any other failure (a failed fsync) may have reached the disk.
 */
function commitFailure(e: unknown, dbPath: string): EtcdRpcError {
  const code = String((e as { code?: unknown }).code ?? '');
  if (code === 'SQLITE_FULL') return Errors.noSpace();
  if (code.startsWith('SQLITE_READONLY') || ((code === 'SQLITE_IOERR_WRITE' || code === 'SQLITE_IOERR') && readOnlyDir(dbPath))) return Errors.readOnly(dirname(dbPath));
  return new EtcdRpcError(status.INTERNAL, `etcdserver: write failed: ${(e as Error).message}`);
}

/**
 * Whether the store's directory refuses writes with EROFS. access(2) is not enough: after an I/O error ext4 turns itself
 * read-only ("emergency_ro") while access(W_OK) still succeeds, so this tries to create a file, as SQLite would write.
 */
function readOnlyDir(dbPath: string): boolean {
  const probe = join(dirname(dbPath), `.write-probe-${process.pid}`);
  try {
    closeSync(openSync(probe, 'w'));
    unlinkSync(probe);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EROFS';
  }
}
