// `trustplane clusters ...`: cluster lifecycle as gcloud's `container clusters` has it, through the control plane host's fleet API.
import type { Command } from 'commander';
import { resolve } from 'node:path';
import { isAuthorityKind, type AuthorityKind } from '../ca/authority.js';
import { localCredential } from '../ca/credential.js';
import type { AuthorityView } from '../ca/service.js';
import { DEFAULT_POOL, type Credentials, type FleetCluster, type MaintenanceWindow, type ObservedClient, type StoreBackend, type UpdateClusterRequest } from '../fleet/api.js';
import type { RotationRecord } from '../fleet/rotation.js';
import type { FleetClient } from '../fleet/client.js';
import { defaultKubeconfigPath, mergeKubeconfig, type KubeconfigEntry } from '../fleet/kubeconfig.js';
import type { KeyAlgorithm } from '../pki/types.js';
import { systemClock } from '../util/clock.js';
import { formatDuration, parseDuration } from '../util/duration.js';
import { invalid, TrustplaneError } from '../util/errors.js';
import { dataDirOf, fleetApi, using, type GlobalOptions } from './context.js';
import { confirmByName, outputFormat, printJson, printTable, safe } from './output.js';
import { countsLine, estimateSecondsLeft, ProgressLine } from './progress.js';

const ALGORITHMS: Record<string, KeyAlgorithm> = {
  p256: { kind: 'ec', curve: 'P-256' },
  p384: { kind: 'ec', curve: 'P-384' },
  rsa2048: { kind: 'rsa', bits: 2048 },
  rsa3072: { kind: 'rsa', bits: 3072 },
  rsa4096: { kind: 'rsa', bits: 4096 },
  ed25519: { kind: 'ed25519' },
};

export function parseKeyAlgorithm(v: string): KeyAlgorithm {
  const a = ALGORITHMS[v.toLowerCase()];
  if (!a) throw invalid(`key algorithm "${v}" is not supported`, `use one of ${Object.keys(ALGORITHMS).join(', ')}`);
  return a;
}

/** One row per authority generation, for describe. */
export function authorityRows(authorities: AuthorityView[], now = systemClock.now()): string[][] {
  const rows: string[][] = [];
  for (const a of authorities)
    for (const g of a.generations) {
      const left = g.notAfter ? (new Date(g.notAfter).getTime() - now.getTime()) / 1000 : NaN;
      rows.push([a.title, `g${g.generation}`, g.state, g.notAfter ?? '-', Number.isNaN(left) ? '-' : formatDuration(left), g.sha256 ?? '-', g.subject ?? '-']);
    }
  return rows;
}

export function printClusterDescription(c: FleetCluster): void {
  const lines = [
    safe`name: ${c.name}`,
    safe`uid: ${c.uid}`,
    safe`created: ${c.createdAt}`,
    safe`status: ${c.status}`,
    safe`statusMessage: ${c.statusMessage}`,
    safe`endpoint: ${c.endpoint || '-'}`,
    safe`store: ${c.store.type} ${c.store.endpoints.join(',')}`,
    safe`caCertHash: ${c.caCertHash}`,
    safe`nodePools: ${c.nodePools.map((p) => p.name).join(', ') || '-'}`,
    ...(c.maintenanceWindow ? [safe`maintenanceWindow: daily ${c.maintenanceWindow.start} UTC for ${c.maintenanceWindow.hours}h`] : []),
    ...(c.rotation ? [safe`credentialRotation: ${rotationLine(c.rotation)}`] : []),
  ];
  process.stdout.write(lines.join('\n') + '\n\n');
  printTable(['AUTHORITY', 'GEN', 'STATE', 'NOT AFTER', 'TIME LEFT', 'SHA-256', 'SUBJECT'], authorityRows(c.authorities));
  if (c.rotation && c.rotation.phase !== 'done') printObservedClients(c.observedClients ?? [], c.observedWindowSeconds);
}

/** During a rotation: the clients still presenting the old generation, or a line saying none was seen. */
function printObservedClients(list: ObservedClient[], windowSeconds: number | undefined): void {
  const within = windowSeconds === undefined ? '' : ` in the last ${formatDuration(windowSeconds)}`;
  if (list.length === 0) {
    process.stdout.write(`\nNo client was seen presenting the old generation${within}.\n`);
    return;
  }
  process.stdout.write(`\n${list.length} client(s) seen presenting the old generation${within} (completion is refused while any is listed, unless --force):\n`);
  printTable(
    ['USER', 'GROUPS', 'GEN', 'SERVER', 'LAST SEEN', 'ADDRESS'],
    list.map((o) => [o.user, o.groups.join(',') || '-', `g${o.generation}`, o.server, o.lastSeen, o.address || '-']),
  );
}

function rotationLine(r: RotationRecord): string {
  const gens = `generation ${r.from} to ${r.to ?? r.from + 1}`;
  if (r.phase === 'done') return `${r.authority} ${gens}, ${r.trigger}, completed ${r.completedAt}${r.forced?.length ? ` (forced; cut off: ${r.forced.join(', ')})` : ''}${r.forcedClients?.length ? ` (forced past clients seen on the old generation: ${r.forcedClients.join(', ')})` : ''}`;
  return `${r.authority} ${gens}, ${r.trigger}, phase ${r.phase} since ${r.history[r.history.length - 1].at} (started ${r.startedAt})`;
}

/** "03:00/4h" or "03:00" (4 hours) to a maintenance window. */
export function parseWindow(text: string): MaintenanceWindow {
  const m = /^([01]\d|2[0-3]):([0-5]\d)(?:\/(\d+)h)?$/.exec(text.trim());
  if (!m) throw invalid(`--maintenance-window "${text}" is not HH:MM[/Nh]`, 'give the daily start in UTC and optionally its length, e.g. 03:00/4h');
  const hours = m[3] ? Number(m[3]) : 4;
  if (hours < 1 || hours > 24) throw invalid(`--maintenance-window length ${hours}h must be 1 to 24 hours`);
  return { start: `${m[1]}:${m[2]}`, hours };
}

/** The context name get-credentials and up give a cluster, as gcloud's gke_<project>_<zone>_<name>. */
export const contextName = (cluster: string) => `trustplane_${cluster}`;

/** An admin credential for `cluster`: the key is made here and never leaves this process except into the kubeconfig. */
export async function adminKubeconfigEntry(fleet: FleetClient, cluster: string, username = 'admin'): Promise<KubeconfigEntry & { notAfter: string }> {
  let got: Credentials | undefined;
  const cred = await localCredential([{ type: 'O', value: 'system:masters' }, { type: 'CN', value: username }], async (csr) => {
    got = await fleet.credentials(cluster, { csr, username });
    return { certificate: got.certificate, chain: [], notAfter: got.notAfter };
  });
  return { name: contextName(cluster), server: got!.server, caBundle: got!.caBundle, clientCert: cred.cert, clientKey: cred.key, user: username, notAfter: got!.notAfter };
}

/**
 * `update --complete-credential-rotation --wait`: follows the rotation (its phase, then the nodes moving, with the
 * count and the time left on the progress line) and completes it once nothing holds it back. A refusal that waiting can
 * cure (Conflict: nodes or clients still on the old generation) is shown and asked again; anything else ends the wait.
 */
export async function completeWhenMoved(f: FleetClient, name: string, req: UpdateClusterRequest, timeoutMs: number, line = new ProgressLine()): Promise<FleetCluster> {
  const started = Date.now();
  const deadline = started + timeoutMs;
  let total = 0;
  let lastPhase = '';
  let why = '';
  try {
    for (let first = true; ; first = false) {
      const l = await f.lifetime(name);
      const r = l.rotation;
      if (!r || r.phase === 'done') {
        if (first) throw new TrustplaneError('Conflict', `no credential rotation is in progress for cluster "${name}"`, `start one with \`trustplane clusters update ${name} --start-credential-rotation\``);
        line.done(`The credential rotation of cluster ${name} was completed meanwhile.`);
        return await f.describe(name);
      }
      if (r.phase !== 'moving') {
        why = `in phase ${r.phase}`;
        line.update(`Rotation of cluster ${name}: ${why}`, { milestone: r.phase !== lastPhase });
      } else {
        const waiting = l.waitingFor ?? [];
        total = Math.max(total, waiting.length);
        const moved = total - waiting.length;
        if (waiting.length === 0 || req.force) {
          try {
            const c = await f.update(name, req);
            line.done(`Rotation of cluster ${name}: ${total ? `${total}/${total} nodes moved, ` : ''}completed.`);
            return c;
          } catch (e) {
            if (!(e instanceof TrustplaneError && e.reason === 'Conflict')) throw e;
            why = e.message;
            line.update(`Rotation of cluster ${name}: waiting: ${e.message}`, { milestone: true });
          }
        } else {
          const shown = waiting.slice(0, 3).join(', ') + (waiting.length > 3 ? ` and ${waiting.length - 3} more` : '');
          why = `${waiting.length} node(s) have not moved: ${shown}`;
          line.update(`Rotation of cluster ${name}: nodes moved ${countsLine(moved, total, estimateSecondsLeft(moved, total, started, Date.now()))}; waiting for ${shown}`);
        }
      }
      lastPhase = r.phase;
      if (Date.now() >= deadline)
        throw new TrustplaneError(
          'Timeout',
          `the credential rotation of cluster "${name}" did not complete within ${formatDuration(timeoutMs / 1000)}: ${why}`,
          `see what it waits for with \`trustplane clusters check-credential-lifetime ${name}\`; wait longer with --timeout, or pass --force to cut off the nodes that have not moved`,
        );
      await new Promise((r) => setTimeout(r, Math.min(1000, Math.max(0, deadline - Date.now()))));
    }
  } finally {
    line.done();
  }
}

export function register(program: Command, globals: () => GlobalOptions): void {
  const clusters = program.command('clusters').description('create, list, describe and delete clusters');

  clusters
    .command('create <name>')
    .description("create a cluster: its CAs (keys in the CA service's key store), state store, API server, controllers and a default node pool")
    .option('--key-algorithm <alg>', `CA key algorithm: ${Object.keys(ALGORITHMS).join(', ')}`, 'p256')
    .option('--root-ca-lifetime <duration>', 'cluster root CA lifetime', '10y')
    .option('--etcd-ca-lifetime <duration>', 'etcd API and etcd peer CA lifetime', '5y')
    .option('--store <type>', 'where cluster state lives: embedded (SQLite behind the etcd v3 API) or etcd', 'embedded')
    .option('--etcd-endpoints <urls>', 'with --store etcd: comma-separated https:// client URLs of the etcd members')
    .option('--default-pool <name>', 'name of the node pool created with the cluster', DEFAULT_POOL)
    .option('--maintenance-window <HH:MM[/Nh]>', 'daily window (UTC; default length 4h) for optional automatic work, such as completing an automatic rotation')
    .option('-o, --output <format>', 'json')
    .action(async (name: string, o: { keyAlgorithm: string; rootCaLifetime: string; etcdCaLifetime: string; store: string; etcdEndpoints?: string; defaultPool: string; maintenanceWindow?: string; output?: string }) => {
      const fmt = outputFormat(o.output ?? globals().output);
      const etcd = parseDuration(o.etcdCaLifetime, '--etcd-ca-lifetime');
      const lifetimes: Partial<Record<AuthorityKind, number>> = { root: parseDuration(o.rootCaLifetime, '--root-ca-lifetime'), 'etcd-api': etcd, 'etcd-peer': etcd };
      let store: StoreBackend;
      if (o.store === 'embedded') {
        if (o.etcdEndpoints) throw invalid('--etcd-endpoints needs --store etcd');
        store = { type: 'embedded' };
      } else if (o.store === 'etcd') {
        if (!o.etcdEndpoints) throw invalid('--store etcd needs --etcd-endpoints', 'e.g. --etcd-endpoints https://127.0.0.1:2379,https://127.0.0.1:22379');
        store = { type: 'etcd', endpoints: o.etcdEndpoints.split(',').map((x) => x.trim()).filter(Boolean) };
      } else throw invalid(`--store "${o.store}" is not a store type`, 'use embedded or etcd');
      const keyAlgorithm = parseKeyAlgorithm(o.keyAlgorithm);
      if (fmt !== 'json') process.stderr.write(`Creating cluster ${name}...\n`);
      await using(fleetApi(dataDirOf(globals())), async (f) => {
        const c = await f.create({ name, keyAlgorithm, lifetimes, store, defaultPool: o.defaultPool, ...(o.maintenanceWindow ? { maintenanceWindow: parseWindow(o.maintenanceWindow) } : {}) });
        if (fmt === 'json') printJson(c);
        else {
          process.stdout.write(`Created cluster ${c.name}.\n`);
          if (c.status === 'PROVISIONING' && c.store.type === 'etcd')
            process.stdout.write(`It waits for its etcd cluster: issue member certificates with \`trustplane store member-certs ${c.name} ...\`, start etcd, and it comes up by itself.\n`);
          process.stdout.write(`Get credentials for kubectl with: trustplane clusters get-credentials ${c.name}\n\n`);
          printClusterDescription(c);
        }
      });
    });

  clusters
    .command('list')
    .description('list clusters')
    .option('-o, --output <format>', 'json')
    .action(async (o: { output?: string }) => {
      const fmt = outputFormat(o.output ?? globals().output);
      await using(fleetApi(dataDirOf(globals())), async (f) => {
        const list = await f.list();
        if (fmt === 'json') return printJson(list);
        const now = systemClock.now().getTime();
        printTable(
          ['NAME', 'STATUS', 'ENDPOINT', 'STORE', 'ROOT CA EXPIRES', 'TIME LEFT', 'CREATED'],
          list.map((c) => {
            const root = c.authorities.find((a) => a.kind === 'root')?.generations.find((g) => g.state === 'active');
            return [c.name, c.status, c.endpoint || '-', c.store.type, root?.notAfter ?? '-', root?.notAfter ? formatDuration((new Date(root.notAfter).getTime() - now) / 1000) : '-', c.createdAt];
          }),
        );
      });
    });

  clusters
    .command('describe <name>')
    .description("show a cluster: status, endpoint, store, CA fingerprints, generations and expiry dates, node pools")
    .option('-o, --output <format>', 'json')
    .option('--bundle <authority>', 'print only the PEM trust bundle of one authority: root, etcd-api or etcd-peer')
    .action(async (name: string, o: { output?: string; bundle?: string }) => {
      const fmt = outputFormat(o.output ?? globals().output);
      await using(fleetApi(dataDirOf(globals())), async (f) => {
        const c = await f.describe(name);
        if (o.bundle) {
          const a = c.authorities.find((x) => x.kind === o.bundle);
          if (!a) throw invalid(`--bundle "${o.bundle}" is not an authority`, 'use root, etcd-api or etcd-peer');
          process.stdout.write(a.bundle);
        } else if (fmt === 'json') printJson(c);
        else printClusterDescription(c);
      });
    });

  clusters
    .command('get-credentials <name>')
    .description('write an admin (system:masters) client certificate for a cluster into a kubeconfig and make it the current context, as gcloud does')
    .option('--kubeconfig <path>', 'the kubeconfig to merge into (default: first path of $KUBECONFIG, else ~/.kube/config)')
    .option('--username <name>', 'the Kubernetes user name in the certificate', 'admin')
    .option('-o, --output <format>', 'json')
    .action(async (name: string, o: { kubeconfig?: string; username: string; output?: string }) => {
      const fmt = outputFormat(o.output ?? globals().output);
      const path = resolve(o.kubeconfig ?? defaultKubeconfigPath());
      await using(fleetApi(dataDirOf(globals())), async (f) => {
        const e = await adminKubeconfigEntry(f, name, o.username);
        mergeKubeconfig(path, e);
        if (fmt === 'json') printJson({ cluster: name, kubeconfig: path, context: e.name, server: e.server, user: e.user, notAfter: e.notAfter });
        else process.stdout.write(`Fetching cluster endpoint and auth data.\nkubeconfig entry generated for ${name} in ${path} (context ${e.name}, user ${e.user}, expires ${e.notAfter}).\n`);
      });
    });

  clusters
    .command('update <name>')
    .description('change a cluster: rotate its credentials in two phases (start, then complete once nodes have moved), or set its maintenance window')
    .option('--start-credential-rotation', 'make the next cluster root CA generation, trust both, re-issue control plane certificates; nodes move by themselves')
    .option('--complete-credential-rotation', 'trust only the new generation and destroy the old key (refused while nodes still hold only old credentials, or clients were seen presenting them lately)')
    .option('--force', 'with --complete-credential-rotation: complete although some nodes have not moved (they must join again) or clients were seen on the old generation')
    .option('--maintenance-window <HH:MM[/Nh]>', 'daily window (UTC; default length 4h) for optional automatic work, such as completing an automatic rotation')
    .option('--clear-maintenance-window', 'remove the maintenance window')
    .option('--wait', 'with --complete-credential-rotation: wait until the nodes have moved, then complete (progress on standard error)')
    .option('--timeout <duration>', 'with --wait: give up after this long', '30m')
    .option('--authority <kind>', 'root (the default); the etcd CAs are rotated automatically and cannot be asked for')
    .option('-o, --output <format>', 'json')
    .action(async (name: string, o: { startCredentialRotation?: boolean; completeCredentialRotation?: boolean; force?: boolean; wait?: boolean; timeout: string; maintenanceWindow?: string; clearMaintenanceWindow?: boolean; authority?: string; output?: string }) => {
      const fmt = outputFormat(o.output ?? globals().output);
      if (o.authority !== undefined && !isAuthorityKind(o.authority)) throw invalid(`--authority "${o.authority}" is not one of root, etcd-api, etcd-peer`);
      if (!o.startCredentialRotation && !o.completeCredentialRotation && !o.maintenanceWindow && !o.clearMaintenanceWindow)
        throw invalid('nothing to update', 'pass --start-credential-rotation, --complete-credential-rotation, --maintenance-window or --clear-maintenance-window');
      if (o.force && !o.completeCredentialRotation) throw invalid('--force only goes with --complete-credential-rotation');
      if (o.wait && !o.completeCredentialRotation) throw invalid('--wait only goes with --complete-credential-rotation', 'start the rotation first, then wait for its completion with --complete-credential-rotation --wait');
      const waitMs = parseDuration(o.timeout, '--timeout') * 1000;
      if (o.maintenanceWindow && o.clearMaintenanceWindow) throw invalid('--maintenance-window and --clear-maintenance-window together make no sense');
      const req: UpdateClusterRequest = {
        ...(o.startCredentialRotation ? { startCredentialRotation: true } : {}),
        ...(o.completeCredentialRotation ? { completeCredentialRotation: true, force: !!o.force } : {}),
        ...(o.authority ? { authority: o.authority as AuthorityKind } : {}),
        ...(o.maintenanceWindow ? { maintenanceWindow: parseWindow(o.maintenanceWindow) } : o.clearMaintenanceWindow ? { maintenanceWindow: null } : {}),
      };
      await using(fleetApi(dataDirOf(globals())), async (f) => {
        if (o.startCredentialRotation && (o.authority ?? 'root') === 'root') process.stderr.write(`Starting the credential rotation of cluster ${name}: new root CA generation, trust in both, control plane certificates re-issued...\n`);
        if (o.completeCredentialRotation) process.stderr.write(`Completing the credential rotation of cluster ${name}: retiring the old root CA generation and destroying its key...\n`);
        const c = o.wait ? await completeWhenMoved(f, name, req, waitMs) : await f.update(name, req);
        if (fmt === 'json') return printJson(c);
        printClusterDescription(c);
        if (o.startCredentialRotation)
          process.stdout.write(
            `\nNodes now re-issue their certificates under the new generation by themselves. Old credentials keep working until you run\n` +
              `  trustplane clusters update ${name} --complete-credential-rotation\n` +
              `Hand out new admin credentials now: trustplane clusters get-credentials ${name}\n`,
          );
      });
    });

  clusters
    .command('check-credential-lifetime <name>')
    .description("show, per authority, its generations, not-after dates, time left, and when the next automatic action happens")
    .option('-o, --output <format>', 'json')
    .action(async (name: string, o: { output?: string }) => {
      const fmt = outputFormat(o.output ?? globals().output);
      await using(fleetApi(dataDirOf(globals())), async (f) => {
        const l = await f.lifetime(name);
        if (fmt === 'json') return printJson(l);
        process.stdout.write(safe`cluster ${l.cluster}: ${l.status}` + (l.statusMessage ? safe` (${l.statusMessage})` : '') + '\n');
        if (l.rotation) process.stdout.write(safe`credential rotation: ${rotationLine(l.rotation)}` + '\n');
        if (l.waitingFor?.length)
          process.stdout.write(`waiting for ${l.waitingFor.length}: ${safe`${l.waitingFor.slice(0, 20).join(', ')}`}${l.waitingFor.length > 20 ? ` and ${l.waitingFor.length - 20} more` : ''}\n`);
        if (l.maintenanceWindow) process.stdout.write(`maintenance window: daily ${l.maintenanceWindow.start} UTC for ${l.maintenanceWindow.hours}h\n`);
        if (l.rotation && l.rotation.phase !== 'done') printObservedClients(l.observedClients ?? [], l.observedWindowSeconds);
        process.stdout.write('\n');
        const rows: string[][] = [];
        for (const a of l.authorities)
          for (const g of a.generations)
            rows.push([a.title, `g${g.generation}`, g.state, g.notAfter ?? '-', g.secondsLeft === undefined ? '-' : formatDuration(g.secondsLeft), g.state === 'active' ? (a.next.action === 'none' ? a.next.why : `${a.next.action} at ${a.next.at}`) : '']);
        printTable(['AUTHORITY', 'GEN', 'STATE', 'NOT AFTER', 'TIME LEFT', 'NEXT AUTOMATIC ACTION'], rows);
      });
    });

  clusters
    .command('delete <name>')
    .description("delete a cluster and destroy its CA keys in the key store (cannot be undone)")
    .option('-y, --yes', 'do not ask for confirmation')
    .action(async (name: string, o: { yes?: boolean }) => {
      if (!o.yes) await confirmByName(`Delete cluster "${name}" and destroy its CA keys?`, name, { doing: `delete cluster "${name}"`, undone: 'deleted' });
      await using(fleetApi(dataDirOf(globals())), async (f) => {
        await f.delete(name);
        process.stdout.write(`Deleted cluster ${name}; its CA keys are destroyed.\n`);
      });
    });
}
