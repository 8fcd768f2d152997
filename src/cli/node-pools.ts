// `trustplane node-pools ...`: a cluster's node pools and the bootstrap tokens nodes join them with (gcloud's node-pools).
import type { Command } from 'commander';
import { DEFAULT_TOKEN_TTL_S } from '../fleet/api.js';
import { parseDuration } from '../util/duration.js';
import { dataDirOf, fleetApi, using, type GlobalOptions } from './context.js';
import { outputFormat, printJson, printTable } from './output.js';

export function register(program: Command, globals: () => GlobalOptions): void {
  const pools = program.command('node-pools').description("a cluster's node pools and their bootstrap tokens");
  const fmtOf = (o: { output?: string }) => outputFormat(o.output ?? globals().output);

  pools
    .command('create <pool>')
    .description('create a node pool')
    .requiredOption('--cluster <name>', 'the cluster')
    .option('-o, --output <format>', 'json')
    .action(async (pool: string, o: { cluster: string; output?: string }) => {
      const fmt = fmtOf(o);
      await using(fleetApi(dataDirOf(globals())), async (f) => {
        const p = await f.createPool(o.cluster, pool);
        if (fmt === 'json') printJson(p);
        else process.stdout.write(`Created node pool ${p.name} in cluster ${o.cluster}.\nMake a join token with: trustplane node-pools bootstrap-token ${p.name} --cluster ${o.cluster}\n`);
      });
    });

  pools
    .command('list')
    .description("list a cluster's node pools")
    .requiredOption('--cluster <name>', 'the cluster')
    .option('-o, --output <format>', 'json')
    .action(async (o: { cluster: string; output?: string }) => {
      const fmt = fmtOf(o);
      await using(fleetApi(dataDirOf(globals())), async (f) => {
        const list = await f.listPools(o.cluster);
        if (fmt === 'json') printJson(list);
        else printTable(['NAME', 'CREATED'], list.map((p) => [p.name, p.createdAt]));
      });
    });

  pools
    .command('delete <pool>')
    .description('delete a node pool and every bootstrap token made for it (nodes that joined keep their credentials)')
    .requiredOption('--cluster <name>', 'the cluster')
    .option('-o, --output <format>', 'json')
    .action(async (pool: string, o: { cluster: string; output?: string }) => {
      const fmt = fmtOf(o);
      await using(fleetApi(dataDirOf(globals())), async (f) => {
        const r = await f.deletePool(o.cluster, pool);
        if (fmt === 'json') printJson(r);
        else process.stdout.write(`Deleted node pool ${pool} of cluster ${o.cluster} and ${r.tokensDeleted} bootstrap token(s).\n`);
      });
    });

  pools
    .command('bootstrap-token <pool>')
    .description('make a bootstrap token for the pool and print the command a node joins with (token and CA hash included)')
    .requiredOption('--cluster <name>', 'the cluster')
    .option('--ttl <duration>', 'how long the token stays valid (1m to 30d)', `${DEFAULT_TOKEN_TTL_S / 3600}h`)
    .option('--node-name <name>', 'bind the token to one node name; it is then spent by its first CSR')
    .option('-o, --output <format>', 'json')
    .action(async (pool: string, o: { cluster: string; ttl: string; nodeName?: string; output?: string }) => {
      const fmt = fmtOf(o);
      const ttlSeconds = parseDuration(o.ttl, '--ttl');
      await using(fleetApi(dataDirOf(globals())), async (f) => {
        const t = await f.bootstrapToken(o.cluster, pool, { ttlSeconds, nodeName: o.nodeName });
        if (fmt === 'json') printJson(t);
        else
          process.stdout.write(
            `Bootstrap token ${t.id} for node pool ${pool} of cluster ${o.cluster}, valid until ${t.expiresAt}${t.nodeName ? `, for node ${t.nodeName} only` : ''}.\n` +
              `Treat it as a secret. On the node, run:\n\n  ${t.joinCommand}\n`,
          );
      });
    });
}
