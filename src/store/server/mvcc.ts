// The revisioned key space on SQLite: every version of every key until compaction, plus an index of the live keys.
import Database from 'better-sqlite3';
import { statSync } from 'node:fs';
import { TrustplaneError } from '../../util/errors.js';
import { preparePrivateDatabase } from '../../util/files.js';
import { type KeyRange } from './key-range.js';
import { NO_LEASE, type KeyValue, type StoreEvent } from './types.js';
import { kvHead, leaseField } from './wire.js';

/*
 * kv holds history: one row per change, tombstones (version 0) included; its rowid is the order of changes,
 * so (mod_revision, id) is the order etcd gives events within a revision. live points at the current row of
 * each existing key, so reads at the newest revision and counts never wade through history.
 * A row never changes once written, so it also carries its own protobuf framing: pb_head ‖ value ‖ pb_tail is the
 * row as one mvccpb.KeyValue entry of a RangeResponse (see wire.ts kvHead), and a range is one SQLite aggregate
 * of those, with no per-key JavaScript at all.
 */
const SCHEMA = `
CREATE TABLE IF NOT EXISTS kv (
  id INTEGER PRIMARY KEY,
  key BLOB NOT NULL,
  mod_revision INTEGER NOT NULL,
  create_revision INTEGER NOT NULL,
  version INTEGER NOT NULL,
  lease INTEGER NOT NULL,
  value BLOB NOT NULL,
  pb_head BLOB NOT NULL DEFAULT x'',
  pb_tail BLOB NOT NULL DEFAULT x''
);
CREATE INDEX IF NOT EXISTS kv_by_key ON kv (key, mod_revision);
CREATE INDEX IF NOT EXISTS kv_by_revision ON kv (mod_revision);
CREATE TABLE IF NOT EXISTS live (
  key BLOB PRIMARY KEY,
  id INTEGER NOT NULL,
  create_revision INTEGER NOT NULL,
  mod_revision INTEGER NOT NULL,
  version INTEGER NOT NULL,
  lease INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (id INTEGER PRIMARY KEY, ttl INTEGER NOT NULL);
`;
const SCHEMA_VERSION = 2;

/** Version 1 had no protobuf framing columns: add them and fill them from each row. */
function migrateFrom1(db: Database.Database): void {
  db.function('tp_kv_head', { deterministic: true }, (key, create, mod, version, valueLength, lease) => {
    const tail = leaseField(String(lease));
    return kvHead(key as Buffer, Number(create), Number(mod), Number(version), Number(valueLength), tail.length);
  });
  db.function('tp_kv_tail', { deterministic: true }, (lease) => leaseField(String(lease)));
  db.transaction(() => {
    db.exec(`ALTER TABLE kv ADD COLUMN pb_head BLOB NOT NULL DEFAULT x''`);
    db.exec(`ALTER TABLE kv ADD COLUMN pb_tail BLOB NOT NULL DEFAULT x''`);
    db.exec(
      `UPDATE kv SET pb_head = tp_kv_head(key, create_revision, mod_revision, version, length(value), CAST(lease AS TEXT)), ` +
        `pb_tail = tp_kv_tail(CAST(lease AS TEXT)) WHERE version > 0`,
    );
    db.pragma('user_version = 2');
  })();
}

/** The current row of an existing key, without its value. */
export interface LiveRow {
  key: Buffer;
  id: number;
  create_revision: number;
  mod_revision: number;
  version: number;
  lease: string;
}

export interface PersistedLease {
  id: string;
  ttl: number;
}

export type Synchronous = 'FULL' | 'NORMAL';

const KV_COLUMNS = 'key, create_revision, mod_revision, version, CAST(lease AS TEXT) AS lease, value';

function where(r: KeyRange, column: string): { sql: string; params: Buffer[] } {
  switch (r.kind) {
    case 'single':
      return { sql: `${column} = ?`, params: [r.key] };
    case 'from':
      return { sql: `${column} >= ?`, params: [r.key] };
    case 'between':
      return { sql: `${column} >= ? AND ${column} < ?`, params: [r.key, r.end] };
    case 'empty':
      return { sql: '0', params: [] };
  }
}

export class MvccStore {
  readonly db: Database.Database;
  readonly path: string;
  /** The newest revision; 1 in an empty store, as in etcd. */
  rev = 1;
  /** Reads and watches below this revision are refused; -1 before the first compaction. */
  compactRev = -1;
  /** History at or below this revision has been physically removed. */
  physicalCompactRev = -1;
  /** Count of applied writes, reported as raft_index. */
  raftIndex = 0;
  /** Bumped at each start, as a new term begins with each election. */
  raftTerm = 1;

  /** Changes made in the running batch, in order; the write queue takes them after commit. */
  private pending: StoreEvent[] = [];
  /** Row id up to which the running physical compaction has worked (in memory; restarts resume from physicalCompactRev). */
  private compactCursor: number | undefined;
  private readonly stmts = new Map<string, Database.Statement>();

  constructor(path: string, synchronous: Synchronous) {
    this.path = path;
    // The database 0600 before SQLite opens it: its -wal and -shm are created with the database's mode.
    preparePrivateDatabase(path);
    // A second server on the same file waits this long for the owner's lock before giving up.
    this.db = new Database(path, { timeout: 1000 });
    try {
      // WAL + FULL: a commit is on disk when it returns, and survives power loss (NORMAL may lose the last commits).
      this.db.pragma('journal_mode = WAL');
      this.db.pragma(`synchronous = ${synchronous}`);
      // One process owns the file; a second server on the same database fails instead of corrupting history.
      this.db.pragma('locking_mode = EXCLUSIVE');
      this.db.pragma('cache_size = -65536');
      this.db.pragma('temp_store = MEMORY');
      const fresh = (this.db.prepare(`SELECT count(*) FROM sqlite_master WHERE name = 'kv'`).pluck().get() as number) === 0;
      let version = this.db.pragma('user_version', { simple: true }) as number;
      // Version 0 with tables: a version-1 store cut off between creating its tables and stamping their version.
      if (version === 1 || (version === 0 && !fresh)) {
        migrateFrom1(this.db);
        version = SCHEMA_VERSION;
      }
      this.db.exec(SCHEMA);
      if (version === 0) this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
      else if (version !== SCHEMA_VERSION)
        throw new TrustplaneError('Invalid', `${path}: store schema version ${version}; this server reads version ${SCHEMA_VERSION}`, 'use the trustplane release that wrote this store');
      this.load();
      this.raftTerm += 1;
      this.db.transaction(() => this.persistMeta())();
    } catch (e) {
      this.db.close();
      if ((e as { code?: string }).code === 'SQLITE_BUSY')
        throw new TrustplaneError('Conflict', `${path} is held by another running store server`, 'stop that server first, or give this one its own database file');
      throw e;
    }
  }

  /** Re-reads the counters from disk, e.g. after a failed commit. */
  load(): void {
    const meta = new Map<string, number>();
    for (const r of this.db.prepare('SELECT name, value FROM meta').all() as Array<{ name: string; value: number }>) meta.set(r.name, r.value);
    this.rev = meta.get('revision') ?? 1;
    this.compactRev = meta.get('compact_revision') ?? -1;
    this.physicalCompactRev = meta.get('physical_compact_revision') ?? -1;
    this.raftIndex = meta.get('raft_index') ?? 0;
    this.raftTerm = meta.get('raft_term') ?? 1;
    this.pending = [];
    this.compactCursor = undefined;
  }

  persistMeta(): void {
    const set = this.stmt('INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value');
    set.run('revision', this.rev);
    set.run('compact_revision', this.compactRev);
    set.run('physical_compact_revision', this.physicalCompactRev);
    set.run('raft_index', this.raftIndex);
    set.run('raft_term', this.raftTerm);
  }

  close(): void {
    this.db.close();
  }

  private stmt(sql: string): Database.Statement {
    let s = this.stmts.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.stmts.set(sql, s);
    }
    return s;
  }

  // ---- reads -------------------------------------------------------------------------------------------------

  /**
   * Keys in `r` in key order, as of revision `at` (already checked against the compacted and current revisions),
   * or as they are now when `at` is null. `limit` 0 means all. Values are left empty when `withValues` is false.
   */
  range(r: KeyRange, at: number | null, limit: number, withValues: boolean): KeyValue[] {
    if (r.kind === 'empty') return [];
    if (at === null) {
      const w = where(r, 'l.key');
      const sql = withValues
        ? `SELECT l.key, l.create_revision, l.mod_revision, l.version, CAST(l.lease AS TEXT) AS lease, kv.value FROM live l JOIN kv ON kv.id = l.id WHERE ${w.sql} ORDER BY l.key LIMIT ?`
        : `SELECT l.key, l.create_revision, l.mod_revision, l.version, CAST(l.lease AS TEXT) AS lease FROM live l WHERE ${w.sql} ORDER BY l.key LIMIT ?`;
      const rows = this.stmt(sql).all(...w.params, limit > 0 ? limit : -1) as KeyValue[];
      if (!withValues) for (const row of rows) row.value = EMPTY;
      return rows;
    }
    const out: KeyValue[] = [];
    const byId = this.stmt(`SELECT ${KV_COLUMNS} FROM kv WHERE id = ?`);
    for (const id of this.historicIds(r, at)) {
      const row = byId.get(id) as KeyValue;
      if (row.version === 0) continue;
      if (!withValues) row.value = EMPTY;
      out.push(row);
      if (limit > 0 && out.length >= limit) break;
    }
    return out;
  }

  /**
   * The keys in `r` as of revision `at` (or now when null), at most `limit` (0: all), in key order, already in wire
   * form: consecutive RangeResponse.kvs entries, concatenated by SQLite. `n` is how many.
   */
  rangeEncoded(r: KeyRange, at: number | null, limit: number): { kvs: Buffer; n: number } {
    if (r.kind === 'empty') return { kvs: EMPTY, n: 0 };
    const lim = limit > 0 ? limit : -1;
    if (r.kind === 'single' && at === null) {
      const one = this.stmt(`SELECT CAST(kv.pb_head || kv.value || kv.pb_tail AS BLOB) FROM live l JOIN kv ON kv.id = l.id WHERE l.key = ?`)
        .pluck()
        .get(r.key) as Buffer | undefined;
      return one ? { kvs: one, n: 1 } : { kvs: EMPTY, n: 0 };
    }
    // The inner query walks the keys in order (its ORDER BY follows an index: no sort) and the aggregate keeps that
    // order; test/store/server/wire.test.ts checks it on keys written out of order. `||` on blobs keeps every byte.
    let sql: string;
    let params: unknown[];
    if (at === null) {
      const w = where(r, 'l.key');
      sql = `SELECT kv.pb_head || kv.value || kv.pb_tail AS e FROM live l JOIN kv ON kv.id = l.id WHERE ${w.sql} ORDER BY l.key LIMIT ?`;
      params = [...w.params, lim];
    } else {
      const w = where(r, 'key');
      sql =
        `SELECT kv.pb_head || kv.value || kv.pb_tail AS e FROM (SELECT max(id) AS id, key FROM kv WHERE ${w.sql} AND mod_revision <= ? GROUP BY key) g ` +
        `JOIN kv ON kv.id = g.id WHERE kv.version > 0 ORDER BY g.key LIMIT ?`;
      params = [...w.params, at, lim];
    }
    const row = this.stmt(`SELECT CAST(group_concat(e, '') AS BLOB), count(*) FROM (${sql})`).raw().get(...params) as [Buffer | null, number];
    return { kvs: row[0] ?? EMPTY, n: row[1] };
  }

  /** How many keys in `r` exist as of revision `at`, or now when `at` is null. */
  count(r: KeyRange, at: number | null): number {
    if (r.kind === 'empty') return 0;
    const w = where(r, 'key');
    if (at === null) return this.stmt(`SELECT count(*) FROM live WHERE ${w.sql}`).pluck().get(...w.params) as number;
    return this.stmt(
      `SELECT count(*) FROM (SELECT max(id) AS id FROM kv WHERE ${w.sql} AND mod_revision <= ? GROUP BY key) g JOIN kv ON kv.id = g.id WHERE kv.version > 0`,
    )
      .pluck()
      .get(...w.params, at) as number;
  }

  /** Row ids of the newest change at or below `rev` of each key in `r`, in key order (tombstones included). */
  private historicIds(r: KeyRange, rev: number): number[] {
    const w = where(r, 'key');
    return this.stmt(`SELECT max(id) FROM kv WHERE ${w.sql} AND mod_revision <= ? GROUP BY key ORDER BY key`)
      .pluck()
      .all(...w.params, rev) as number[];
  }

  /** The current row of `key`, without its value. */
  liveRow(key: Buffer): LiveRow | undefined {
    return this.stmt('SELECT key, id, create_revision, mod_revision, version, CAST(lease AS TEXT) AS lease FROM live WHERE key = ?').get(key) as
      | LiveRow
      | undefined;
  }

  liveRows(r: KeyRange): LiveRow[] {
    if (r.kind === 'empty') return [];
    const w = where(r, 'key');
    return this.stmt(`SELECT key, id, create_revision, mod_revision, version, CAST(lease AS TEXT) AS lease FROM live WHERE ${w.sql} ORDER BY key`).all(
      ...w.params,
    ) as LiveRow[];
  }

  valueOf(row: LiveRow): Buffer {
    return this.stmt('SELECT value FROM kv WHERE id = ?').pluck().get(row.id) as Buffer;
  }

  toKeyValue(row: LiveRow, withValue = true): KeyValue {
    return {
      key: row.key,
      create_revision: row.create_revision,
      mod_revision: row.mod_revision,
      version: row.version,
      lease: row.lease,
      value: withValue ? this.valueOf(row) : EMPTY,
    };
  }

  /** The key as it was just before `rev` (for a watch event's prev_kv), if it existed then and is not compacted away. */
  kvBefore(key: Buffer, rev: number): KeyValue | undefined {
    const row = this.stmt(`SELECT ${KV_COLUMNS} FROM kv WHERE key = ? AND mod_revision < ? ORDER BY mod_revision DESC, id DESC LIMIT 1`).get(key, rev) as
      | KeyValue
      | undefined;
    return row && row.version > 0 ? row : undefined;
  }

  /**
   * History from `fromRev` on, in order, at most about `maxRows` rows but never part of a revision.
   * `upTo` is the last revision the events cover (fromRev - 1 when there are none).
   */
  eventsFrom(fromRev: number, maxRows: number): { events: StoreEvent[]; upTo: number } {
    let rows = this.stmt(`SELECT ${KV_COLUMNS} FROM kv WHERE mod_revision >= ? ORDER BY mod_revision, id LIMIT ?`).all(fromRev, maxRows) as KeyValue[];
    let upTo = this.rev;
    if (rows.length === maxRows) {
      const last = rows[rows.length - 1].mod_revision;
      if (rows[0].mod_revision === last) {
        // One revision larger than a chunk (a big delete-range): take it whole.
        rows = this.stmt(`SELECT ${KV_COLUMNS} FROM kv WHERE mod_revision = ? ORDER BY id`).all(last) as KeyValue[];
        upTo = last;
      } else {
        rows = rows.filter((r) => r.mod_revision < last);
        upTo = last - 1;
      }
    }
    return { events: rows.map(toEvent), upTo };
  }

  /** Bytes on disk: the database file and its write-ahead log. */
  dbSize(): { size: number; inUse: number } {
    const pageSize = this.db.pragma('page_size', { simple: true }) as number;
    const pages = this.db.pragma('page_count', { simple: true }) as number;
    const free = this.db.pragma('freelist_count', { simple: true }) as number;
    let wal = 0;
    try {
      wal = statSync(`${this.path}-wal`).size;
    } catch {
      wal = 0;
    }
    return { size: pages * pageSize + wal, inUse: (pages - free) * pageSize };
  }

  // ---- writes (inside a batch transaction) -------------------------------------------------------------------

  /** Writes `key` at `rev`; returns the new version. `prev` is the key's current row, if it exists. */
  put(key: Buffer, value: Buffer, lease: string, rev: number, prev: LiveRow | undefined): KeyValue {
    const kv: KeyValue = {
      key,
      value,
      lease,
      mod_revision: rev,
      create_revision: prev ? prev.create_revision : rev,
      version: prev ? prev.version + 1 : 1,
    };
    const leaseInt = BigInt(lease);
    const tail = leaseField(lease);
    const head = kvHead(key, kv.create_revision, rev, kv.version, value.length, tail.length);
    const id = this.stmt('INSERT INTO kv (key, mod_revision, create_revision, version, lease, value, pb_head, pb_tail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)').run(
      key,
      rev,
      kv.create_revision,
      kv.version,
      leaseInt,
      value,
      head,
      tail,
    ).lastInsertRowid;
    this.stmt(
      'INSERT INTO live (key, id, create_revision, mod_revision, version, lease) VALUES (?, ?, ?, ?, ?, ?) ' +
        'ON CONFLICT(key) DO UPDATE SET id = excluded.id, create_revision = excluded.create_revision, mod_revision = excluded.mod_revision, version = excluded.version, lease = excluded.lease',
    ).run(key, id, kv.create_revision, rev, kv.version, leaseInt);
    this.pending.push({ type: 'PUT', kv });
    return kv;
  }

  /** Deletes the existing key `row` at `rev`, leaving a tombstone in history. */
  delete(row: LiveRow, rev: number): void {
    this.stmt('INSERT INTO kv (key, mod_revision, create_revision, version, lease, value) VALUES (?, ?, 0, 0, 0, ?)').run(row.key, rev, EMPTY);
    this.stmt('DELETE FROM live WHERE key = ?').run(row.key);
    this.pending.push({ type: 'DELETE', kv: { key: row.key, mod_revision: rev, create_revision: 0, version: 0, value: EMPTY, lease: NO_LEASE } });
  }

  /** How many changes the running batch has made so far. */
  get pendingChanges(): number {
    return this.pending.length;
  }

  /** The changes of the running batch, handed over once (after commit, or discarded after a rollback). */
  takeEvents(): StoreEvent[] {
    const out = this.pending;
    this.pending = [];
    return out;
  }

  /** Keys that carry a lease, for rebuilding the lessor's view at start. */
  leasedKeys(): Array<{ key: Buffer; lease: string }> {
    return this.stmt('SELECT key, CAST(lease AS TEXT) AS lease FROM live WHERE lease != 0').all() as Array<{ key: Buffer; lease: string }>;
  }

  persistedLeases(): PersistedLease[] {
    return this.stmt('SELECT CAST(id AS TEXT) AS id, ttl FROM leases').all() as PersistedLease[];
  }

  saveLease(id: string, ttl: number): void {
    this.stmt('INSERT INTO leases (id, ttl) VALUES (?, ?)').run(BigInt(id), ttl);
  }

  dropLease(id: string): void {
    this.stmt('DELETE FROM leases WHERE id = ?').run(BigInt(id));
  }

  // ---- compaction --------------------------------------------------------------------------------------------

  /**
   * Removes, for keys changed in (physicalCompactRev, compactRev], every version older than the newest one at or
   * below compactRev, and that newest one too when it is a tombstone below compactRev (a tombstone at exactly
   * compactRev stays, so a watch started at the compaction revision still sees that delete).
   * Works through at most `maxRows` changes per call, each call one transaction; returns true when done.
   */
  compactStep(maxRows: number): boolean {
    const target = this.compactRev;
    if (this.physicalCompactRev >= target) return true;
    const maxId = this.stmt('SELECT max(id) FROM kv WHERE mod_revision <= ?').pluck();
    this.compactCursor ??= (maxId.get(this.physicalCompactRev) as number | null) ?? 0;
    const lastId = (maxId.get(target) as number | null) ?? 0;
    const rows =
      lastId > this.compactCursor
        ? (this.stmt('SELECT id, key, mod_revision FROM kv WHERE id > ? AND id <= ? ORDER BY id LIMIT ?').all(this.compactCursor, lastId, maxRows) as Array<{
            id: number;
            key: Buffer;
            mod_revision: number;
          }>)
        : [];
    const newest = this.stmt('SELECT id, version, mod_revision FROM kv WHERE key = ? AND mod_revision <= ? ORDER BY mod_revision DESC, id DESC LIMIT 1');
    const dropOlder = this.stmt('DELETE FROM kv WHERE key = ? AND mod_revision <= ? AND id < ?');
    const dropRow = this.stmt('DELETE FROM kv WHERE id = ?');
    const done = rows.length < maxRows;
    this.db.transaction(() => {
      const seen = new Set<string>();
      for (const row of rows) {
        const k = row.key.toString('latin1');
        if (seen.has(k)) continue;
        seen.add(k);
        const top = newest.get(row.key, target) as { id: number; version: number; mod_revision: number } | undefined;
        if (!top) continue;
        dropOlder.run(row.key, target, top.id);
        if (top.version === 0 && top.mod_revision < target) dropRow.run(top.id);
      }
      // On disk, progress is the revision below which all history is compacted: a restart resumes from there.
      if (done) this.physicalCompactRev = target;
      else this.physicalCompactRev = Math.max(this.physicalCompactRev, rows[rows.length - 1].mod_revision - 1);
      this.persistMeta();
    })();
    this.compactCursor = done ? undefined : rows[rows.length - 1].id;
    return done;
  }
}

export const EMPTY = Buffer.alloc(0);

function toEvent(row: KeyValue): StoreEvent {
  if (row.version === 0) return { type: 'DELETE', kv: { key: row.key, mod_revision: row.mod_revision, create_revision: 0, version: 0, value: EMPTY, lease: NO_LEASE } };
  return { type: 'PUT', kv: row };
}
