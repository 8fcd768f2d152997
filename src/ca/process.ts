// Wires one CA service: key store, state, audit log, TLS identity, the API listener, and the local fleet credential.
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { openKeyStore } from '../keystore/registry.js';
import type { KeyStore, KeyStoreConfig } from '../keystore/keystore.js';
import { parseCertificate } from '../pki/index.js';
import type { MinVersion } from '../tls/policy.js';
import { systemClock, type Clock } from '../util/clock.js';
import { caPaths } from '../util/datadir.js';
import { invalid } from '../util/errors.js';
import { claimPidFile } from '../util/pidfile.js';
import { writeFileAtomic } from '../util/files.js';
import { availableParallelism } from 'node:os';
import { AuditLog } from './audit.js';
import { localCredential } from './credential.js';

/** The service writes the subject of its own credentials from the role; the CSR's subject is only a placeholder. */
const PLACEHOLDER_SUBJECT = [{ type: 'CN', value: 'trustplane' }];
import { CsrPool } from './csr-pool.js';
import { startCaServer } from './server.js';
import { CaService } from './service.js';
import { CaStateFile } from './state.js';

/** What `trustplane ca serve` remembers of its key store between starts (never a PIN or a key). */
export type StoredKeyStoreConfig =
  | { type: 'soft'; kekFile?: string }
  | { type: 'pkcs11'; module: string; tokenLabel?: string; slot?: number; pinFile?: string };

export interface CaProcessOptions {
  dataDir: string;
  host?: string;
  port?: number;
  /** Key store on first start; later starts reuse what was recorded unless given again. */
  keystore?: StoredKeyStoreConfig;
  minVersion?: MinVersion;
  clock?: Clock;
  /** Worker threads that parse and verify CSRs; 0 parses on the main thread. Default: one less than the cores, at least 1. */
  csrWorkers?: number;
}

export interface RunningCa {
  url: string;
  service: CaService;
  keys: KeyStore;
  stop(): Promise<void>;
}

export interface Endpoint {
  url: string;
  pid: number;
  keystore: string;
}

export function resolveKeyStoreConfig(dir: string, stored: StoredKeyStoreConfig): KeyStoreConfig {
  if (stored.type === 'soft') return { type: 'soft', dir, kekFile: stored.kekFile };
  const pin = process.env.TRUSTPLANE_PKCS11_PIN ?? (stored.pinFile ? readFileSync(stored.pinFile, 'utf8').trim() : undefined);
  if (!pin) throw invalid('the PKCS#11 key store needs a user PIN', 'set TRUSTPLANE_PKCS11_PIN or pass --pkcs11-pin-file');
  return { type: 'pkcs11', module: stored.module, tokenLabel: stored.tokenLabel, slot: stored.slot, pin };
}

function loadKeyStoreChoice(path: string, given: StoredKeyStoreConfig | undefined): StoredKeyStoreConfig {
  const recorded = existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as { keystore: StoredKeyStoreConfig }).keystore : undefined;
  if (recorded && given && recorded.type !== given.type)
    throw invalid(`this data dir's CA keys live in the "${recorded.type}" key store; it cannot be switched to "${given.type}"`, 'use a new --data-dir for another key store');
  const choice = given ?? recorded ?? { type: 'soft' };
  if (!recorded || given) {
    const cur = existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>) : {};
    writeFileAtomic(path, JSON.stringify({ ...cur, keystore: choice }, null, 2) + '\n');
  }
  return choice;
}

function readRecordedPort(path: string): number | undefined {
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as { port?: number }).port : undefined;
}

function recordPort(path: string, port: number): void {
  const cur = existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>) : {};
  writeFileAtomic(path, JSON.stringify({ ...cur, port }, null, 2) + '\n');
}

export async function runCaProcess(o: CaProcessOptions): Promise<RunningCa> {
  const p = caPaths(o.dataDir);
  const clock = o.clock ?? systemClock;
  mkdirSync(p.dir, { recursive: true, mode: 0o700 });
  const release = claimPidFile(p.pid, `a CA service for data dir ${o.dataDir}`);
  const choice = loadKeyStoreChoice(p.config, o.keystore);
  const keys = await openKeyStore(resolveKeyStoreConfig(p.keystore, choice));
  const audit = new AuditLog(p.audit, clock);
  const state = new CaStateFile(p.state);
  const workers = o.csrWorkers ?? Math.max(1, availableParallelism() - 1);
  const pool = workers > 0 ? new CsrPool(workers) : undefined;
  const service = new CaService(keys, state, audit, clock, pool);
  await service.init();

  // The API's TLS key is made afresh at every start and lives only in memory.
  const host = o.host ?? '127.0.0.1';
  const tlsId = await localCredential(PLACEHOLDER_SUBJECT, (csr) => service.issueServiceCertificate(csr, { role: 'server', dns: ['localhost'], ip: ['127.0.0.1', '::1'] }, 'ca-service'));
  // Port 0 means "the port this data dir had before, else any": clients such as the host keep working across restarts.
  const recordedPort = readRecordedPort(p.config);
  const serverOptions = { service, audit, host, cert: tlsId.cert, key: tlsId.key, minVersion: o.minVersion };
  let server: Awaited<ReturnType<typeof startCaServer>>;
  if (!o.port && recordedPort) {
    server = await startCaServer({ ...serverOptions, port: recordedPort }).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EADDRINUSE') throw e;
      return startCaServer({ ...serverOptions, port: 0 });
    });
  } else server = await startCaServer({ ...serverOptions, port: o.port ?? 0 });
  if (server.port !== recordedPort) recordPort(p.config, server.port);

  // The local fleet administrator's credential, renewed when it nears expiry.
  const serviceCa = service.serviceCaPem();
  const needFleet =
    !existsSync(p.fleetCert) || !existsSync(p.fleetKey) || readFileSync(p.serviceCa, 'utf8') !== serviceCa ||
    parseCertificate(readFileSync(p.fleetCert, 'utf8')).notAfter.getTime() - clock.now().getTime() < 30 * 86400_000;
  if (needFleet) {
    const fleet = await localCredential(PLACEHOLDER_SUBJECT, (csr) => service.issueServiceCertificate(csr, { role: 'fleet', name: 'admin' }, 'ca-service'));
    mkdirSync(dirname(p.fleetCert), { recursive: true, mode: 0o700 });
    writeFileAtomic(p.fleetKey, fleet.key, 0o600);
    writeFileAtomic(p.fleetCert, fleet.cert, 0o600);
  }
  writeFileAtomic(p.serviceCa, serviceCa);
  const endpoint: Endpoint = { url: server.url, pid: process.pid, keystore: keys.type };
  writeFileAtomic(p.endpoint, JSON.stringify(endpoint, null, 2) + '\n');

  let stopped = false;
  return {
    url: server.url,
    service,
    keys,
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.close();
      await pool?.close();
      audit.close();
      await keys.close();
      rmSync(p.endpoint, { force: true });
      release();
    },
  };
}
