// `trustplane ca ...`: run the CA service, show its status, sign a CSR by hand as the fleet administrator.
import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { runCaProcess, type StoredKeyStoreConfig } from '../ca/process.js';
import { parseCertificate, sha256Fingerprint } from '../pki/index.js';
import { parseMinVersion } from '../tls/policy.js';
import { caPaths } from '../util/datadir.js';
import { invalid } from '../util/errors.js';
import { dataDirOf, fleetClient, readEndpoint, type GlobalOptions } from './context.js';
import { outputFormat, printJson, printTable } from './output.js';

export function parseListen(v: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:]+\]|[^:]+):(\d+)$/.exec(v);
  if (!m) throw invalid(`--listen "${v}" is not HOST:PORT`, 'e.g. 127.0.0.1:0 (0 picks a free port)');
  const host = m[1].replace(/^\[|\]$/g, '');
  if (!['127.0.0.1', '::1', 'localhost'].includes(host) && process.env.TRUSTPLANE_ALLOW_NON_LOOPBACK !== '1')
    throw invalid(`--listen host "${host}" is not a loopback address`, 'trustplane listens on 127.0.0.1 or ::1 unless TRUSTPLANE_ALLOW_NON_LOOPBACK=1');
  return { host: host === 'localhost' ? '127.0.0.1' : host, port: Number(m[2]) };
}

function keystoreChoice(o: Record<string, string | undefined>): StoredKeyStoreConfig | undefined {
  if (!o.keystore) return undefined;
  if (o.keystore === 'soft') return { type: 'soft', kekFile: o.kekFile };
  if (o.keystore === 'pkcs11') {
    if (!o.pkcs11Module) throw invalid('--keystore pkcs11 needs --pkcs11-module PATH', 'e.g. /usr/lib/softhsm/libsofthsm2.so');
    return { type: 'pkcs11', module: o.pkcs11Module, tokenLabel: o.pkcs11Token, slot: o.pkcs11Slot ? Number(o.pkcs11Slot) : undefined, pinFile: o.pkcs11PinFile };
  }
  throw invalid(`--keystore "${o.keystore}" is not a key store type`, 'use soft or pkcs11');
}

export function register(program: Command, globals: () => GlobalOptions): void {
  const ca = program.command('ca').description('the CA service: the only holder of CA keys');

  ca.command('serve')
    .description('run the CA service in the foreground (loopback only)')
    .option('--listen <host:port>', 'address to listen on', '127.0.0.1:0')
    .option('--keystore <type>', 'key store for CA keys: soft (default) or pkcs11; recorded on first start')
    .option('--kek-file <path>', 'soft key store: key encryption key file (0600); default <data-dir>/ca/keystore/kek')
    .option('--pkcs11-module <path>', 'pkcs11 key store: the PKCS#11 module (.so)')
    .option('--pkcs11-token <label>', 'pkcs11 key store: token label')
    .option('--pkcs11-slot <n>', 'pkcs11 key store: slot number, instead of a token label')
    .option('--pkcs11-pin-file <path>', 'pkcs11 key store: file holding the user PIN (or set TRUSTPLANE_PKCS11_PIN)')
    .option('--tls-min-version <v>', 'minimum TLS version: 1.2 or 1.3', '1.2')
    .action(async (o: Record<string, string | undefined>) => {
      const dataDir = dataDirOf(globals());
      const { host, port } = parseListen(o.listen ?? '127.0.0.1:0');
      const running = await runCaProcess({ dataDir, host, port, keystore: keystoreChoice(o), minVersion: parseMinVersion(o.tlsMinVersion) });
      process.stdout.write(`trustplane CA service listening on ${running.url} (key store: ${running.keys.type}, data dir: ${dataDir})\n`);
      await new Promise<void>((resolve) => {
        const stop = () => {
          process.stdout.write('stopping the CA service\n');
          void running.stop().then(resolve);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });

  ca.command('status')
    .description('show where the CA service listens, its key store and its own CA')
    .option('-o, --output <format>', 'json')
    .action(async (o: { output?: string }) => {
      const fmt = outputFormat(o.output ?? globals().output);
      const dataDir = dataDirOf(globals());
      const ep = readEndpoint(dataDir);
      const client = fleetClient(dataDir);
      try {
        const s = await client.service();
        const cert = parseCertificate(s.serviceCa);
        const clusters = await client.listClusters();
        const view = { url: ep.url, pid: ep.pid, keystore: ep.keystore, serviceCa: { sha256: sha256Fingerprint(cert.der), notAfter: cert.notAfter.toISOString() }, clusters: clusters.length, auditLog: caPaths(dataDir).audit };
        if (fmt === 'json') printJson(view);
        else printTable(['URL', 'PID', 'KEYSTORE', 'CLUSTERS', 'SERVICE CA SHA-256'], [[view.url, String(view.pid), view.keystore, String(view.clusters), view.serviceCa.sha256]]);
      } finally {
        client.close();
      }
    });

  ca.command('sign')
    .description('sign a CSR as the fleet administrator (the CA service still applies the signer policy)')
    .requiredOption('--cluster <name>', 'cluster whose authority signs')
    .requiredOption('--signer <name>', 'signer profile, e.g. kubernetes.io/kube-apiserver-client')
    .requiredOption('--csr <file>', 'PEM CSR file (e.g. from `openssl req -new`)')
    .option('--expiration-seconds <n>', 'requested lifetime in seconds (at least 600)')
    .option('--admin', 'the explicit admin operation: allows the system:masters group')
    .option('--out <file>', 'write the certificate (and chain) here instead of stdout')
    .action(async (o: { cluster: string; signer: string; csr: string; expirationSeconds?: string; admin?: boolean; out?: string }) => {
      const client = fleetClient(dataDirOf(globals()));
      try {
        const r = await client.sign(o.cluster, {
          signer: o.signer,
          csr: readFileSync(o.csr, 'utf8'),
          expirationSeconds: o.expirationSeconds === undefined ? undefined : Number(o.expirationSeconds),
          admin: o.admin,
        });
        const pem = r.certificate + r.chain.join('');
        if (o.out) {
          writeFileSync(o.out, pem);
          process.stderr.write(`wrote ${o.out} (serial ${r.serial}, expires ${r.notAfter})\n`);
        } else process.stdout.write(pem);
      } finally {
        client.close();
      }
    });
}
