// `trustplane clusters ...`: cluster lifecycle as gcloud's `container clusters` has it (today: the cluster's authorities).
import type { Command } from 'commander';
import type { ClusterView } from '../ca/api.js';
import type { AuthorityKind } from '../ca/authority.js';
import type { KeyAlgorithm } from '../pki/types.js';
import { systemClock } from '../util/clock.js';
import { formatDuration, parseDuration } from '../util/duration.js';
import { invalid } from '../util/errors.js';
import { dataDirOf, fleetClient, type GlobalOptions } from './context.js';
import { outputFormat, printJson, printTable } from './output.js';

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
export function authorityRows(c: ClusterView, now = systemClock.now()): string[][] {
  const rows: string[][] = [];
  for (const a of c.authorities)
    for (const g of a.generations) {
      const left = g.notAfter ? (new Date(g.notAfter).getTime() - now.getTime()) / 1000 : NaN;
      rows.push([a.title, `g${g.generation}`, g.state, g.notAfter ?? '-', Number.isNaN(left) ? '-' : formatDuration(left), g.sha256 ?? '-', g.subject ?? '-']);
    }
  return rows;
}

export function printClusterDescription(c: ClusterView): void {
  process.stdout.write(`name: ${c.name}\nuid: ${c.uid}\ncreated: ${c.createdAt}\nstate: ${c.state}\n\n`);
  printTable(['AUTHORITY', 'GEN', 'STATE', 'NOT AFTER', 'TIME LEFT', 'SHA-256', 'SUBJECT'], authorityRows(c));
}

export function register(program: Command, globals: () => GlobalOptions): void {
  const clusters = program.command('clusters').description('create, list, describe and delete clusters');

  clusters
    .command('create <name>')
    .description("create a cluster: its cluster root CA, etcd API CA and etcd peer CA, keys in the CA service's key store")
    .option('--key-algorithm <alg>', `CA key algorithm: ${Object.keys(ALGORITHMS).join(', ')}`, 'p256')
    .option('--root-ca-lifetime <duration>', 'cluster root CA lifetime', '10y')
    .option('--etcd-ca-lifetime <duration>', 'etcd API and etcd peer CA lifetime', '5y')
    .option('-o, --output <format>', 'json')
    .action(async (name: string, o: { keyAlgorithm: string; rootCaLifetime: string; etcdCaLifetime: string; output?: string }) => {
      const fmt = outputFormat(o.output ?? globals().output);
      const etcd = parseDuration(o.etcdCaLifetime, '--etcd-ca-lifetime');
      const lifetimes: Partial<Record<AuthorityKind, number>> = { root: parseDuration(o.rootCaLifetime, '--root-ca-lifetime'), 'etcd-api': etcd, 'etcd-peer': etcd };
      const client = fleetClient(dataDirOf(globals()));
      try {
        const c = await client.createCluster({ name, keyAlgorithm: parseKeyAlgorithm(o.keyAlgorithm), lifetimes });
        if (fmt === 'json') printJson(c);
        else {
          process.stdout.write(`Created cluster ${c.name}.\n\n`);
          printClusterDescription(c);
        }
      } finally {
        client.close();
      }
    });

  clusters
    .command('list')
    .description('list clusters')
    .option('-o, --output <format>', 'json')
    .action(async (o: { output?: string }) => {
      const fmt = outputFormat(o.output ?? globals().output);
      const client = fleetClient(dataDirOf(globals()));
      try {
        const list = await client.listClusters();
        if (fmt === 'json') printJson(list);
        else {
          const now = systemClock.now().getTime();
          printTable(
            ['NAME', 'STATE', 'ROOT CA EXPIRES', 'TIME LEFT', 'CREATED'],
            list.map((c) => {
              const root = c.authorities.find((a) => a.kind === 'root')?.generations.find((g) => g.state === 'active');
              return [c.name, c.state, root?.notAfter ?? '-', root?.notAfter ? formatDuration((new Date(root.notAfter).getTime() - now) / 1000) : '-', c.createdAt];
            }),
          );
        }
      } finally {
        client.close();
      }
    });

  clusters
    .command('describe <name>')
    .description("show a cluster's authorities: generations, fingerprints, expiry dates and trust bundles")
    .option('-o, --output <format>', 'json')
    .option('--bundle <authority>', 'print only the PEM trust bundle of one authority: root, etcd-api or etcd-peer')
    .action(async (name: string, o: { output?: string; bundle?: string }) => {
      const fmt = outputFormat(o.output ?? globals().output);
      const client = fleetClient(dataDirOf(globals()));
      try {
        const c = await client.describeCluster(name);
        if (o.bundle) {
          const a = c.authorities.find((x) => x.kind === o.bundle);
          if (!a) throw invalid(`--bundle "${o.bundle}" is not an authority`, 'use root, etcd-api or etcd-peer');
          process.stdout.write(a.bundle);
        } else if (fmt === 'json') printJson(c);
        else printClusterDescription(c);
      } finally {
        client.close();
      }
    });

  clusters
    .command('delete <name>')
    .description("delete a cluster and destroy its CA keys in the key store (cannot be undone)")
    .option('-y, --yes', 'do not ask for confirmation')
    .action(async (name: string, o: { yes?: boolean }) => {
      if (!o.yes) {
        if (!process.stdin.isTTY) throw invalid(`refusing to delete cluster "${name}" without confirmation`, 'pass --yes');
        const { createInterface } = await import('node:readline/promises');
        const rl = createInterface({ input: process.stdin, output: process.stdout });
        const answer = await rl.question(`Delete cluster "${name}" and destroy its CA keys? Type the cluster name to confirm: `);
        rl.close();
        if (answer.trim() !== name) throw invalid('not confirmed; nothing was deleted');
      }
      const client = fleetClient(dataDirOf(globals()));
      try {
        await client.deleteCluster(name);
        process.stdout.write(`Deleted cluster ${name}; its CA keys are destroyed.\n`);
      } finally {
        client.close();
      }
    });
}
