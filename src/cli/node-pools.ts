// `trustplane node-pools ...`: a cluster's node pools and the bootstrap tokens nodes join them with (gcloud's node-pools).
import type { Command } from 'commander';
import { DEFAULT_TOKEN_TTL_S } from '../fleet/api.js';
import { parseDuration } from '../util/duration.js';
import { dataDirOf, fleetApi, using, type GlobalOptions } from './context.js';
import { outputFormat, printJson, printTable } from './output.js';

/** The serving options as the fleet API takes them (values may also be comma-separated). */
function servingOptions(o: { allowedCidr?: string[]; dnsSuffix?: string[] }): { allowedCidrs?: string[]; dnsSuffixes?: string[] } {
  const split = (v: string[]) => v.flatMap((x) => x.split(',')).map((x) => x.trim()).filter(Boolean);
  return { ...(o.allowedCidr ? { allowedCidrs: split(o.allowedCidr) } : {}), ...(o.dnsSuffix ? { dnsSuffixes: split(o.dnsSuffix) } : {}) };
}

export function register(program: Command, globals: () => GlobalOptions): void {
  const pools = program.command('node-pools').description("a cluster's node pools and their bootstrap tokens");
  const fmtOf = (o: { output?: string }) => outputFormat(o.output ?? globals().output);

  pools
    .command('create <pool>')
    .description('create a node pool')
    .requiredOption('--cluster <name>', 'the cluster')
    .option('--allowed-cidr <cidr...>', "IP ranges its nodes' serving certificates may name beyond the address a node connects from (default: none)")
    .option('--dns-suffix <suffix...>', 'DNS suffixes: node N may also be certified for N.<suffix> (default: none; N itself always)')
    .option('-o, --output <format>', 'json')
    .action(async (pool: string, o: { cluster: string; allowedCidr?: string[]; dnsSuffix?: string[]; output?: string }) => {
      const fmt = fmtOf(o);
      await using(fleetApi(dataDirOf(globals())), async (f) => {
        const p = await f.createPool(o.cluster, pool, servingOptions(o));
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
        else printTable(['NAME', 'CREATED', 'ALLOWED-CIDRS', 'DNS-SUFFIXES'], list.map((p) => [p.name, p.createdAt, (p.allowedCidrs ?? []).join(',') || '-', (p.dnsSuffixes ?? []).join(',') || '-']));
      });
    });

  pools
    .command('update <pool>')
    .description("change what the pool's nodes' serving certificates may name (an option left out is kept; --clear-* empties it)")
    .requiredOption('--cluster <name>', 'the cluster')
    .option('--allowed-cidr <cidr...>', 'IP ranges (CIDR) allowed beyond the address a node connects from')
    .option('--dns-suffix <suffix...>', 'DNS suffixes: node N may also be certified for N.<suffix>')
    .option('--clear-allowed-cidrs', 'allow no ranges')
    .option('--clear-dns-suffixes', 'allow no suffixes')
    .option('-o, --output <format>', 'json')
    .action(async (pool: string, o: { cluster: string; allowedCidr?: string[]; dnsSuffix?: string[]; clearAllowedCidrs?: boolean; clearDnsSuffixes?: boolean; output?: string }) => {
      const fmt = fmtOf(o);
      const serving = {
        ...servingOptions(o),
        ...(o.clearAllowedCidrs ? { allowedCidrs: [] } : {}),
        ...(o.clearDnsSuffixes ? { dnsSuffixes: [] } : {}),
      };
      await using(fleetApi(dataDirOf(globals())), async (f) => {
        const p = await f.updatePool(o.cluster, pool, serving);
        if (fmt === 'json') printJson(p);
        else
          process.stdout.write(
            `Node pool ${p.name} of cluster ${o.cluster}: allowed ranges ${(p.allowedCidrs ?? []).join(', ') || 'none'}; DNS suffixes ${(p.dnsSuffixes ?? []).join(', ') || 'none'}.\n`,
          );
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
