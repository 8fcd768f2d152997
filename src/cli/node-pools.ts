// `trustplane node-pools ...`: a cluster's node pools and the bootstrap tokens nodes join them with (gcloud's node-pools).
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { DEFAULT_SHIELDED_PCRS } from '../tpm/enrollment.js';
import { invalid } from '../util/errors.js';
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
    .option('--shielded', 'a shielded pool: nodes join by TPM attestation of an enrolled EK and a PCR quote, never with a bootstrap token')
    .option('--pcr-policy <list>', `SHA-256 PCRs every quote of a shielded pool covers (default ${DEFAULT_SHIELDED_PCRS.join(',')})`)
    .option('--ek-ca <file>', "PEM manufacturer CAs: a TPM whose EK certificate chains to one is enrolled by its first attestation, for the node name it asks first")
    .option('-o, --output <format>', 'json')
    .action(async (pool: string, o: { cluster: string; allowedCidr?: string[]; dnsSuffix?: string[]; shielded?: boolean; pcrPolicy?: string; ekCa?: string; output?: string }) => {
      const fmt = fmtOf(o);
      if ((o.pcrPolicy || o.ekCa) && !o.shielded) throw invalid('--pcr-policy and --ek-ca are for shielded pools', 'add --shielded');
      let ekCaBundle: string | undefined;
      try {
        ekCaBundle = o.ekCa ? readFileSync(o.ekCa, 'utf8') : undefined;
      } catch (e) {
        throw invalid(`cannot read --ek-ca ${o.ekCa}: ${(e as Error).message}`);
      }
      const shielded = o.shielded ? { pcrs: o.pcrPolicy ? o.pcrPolicy.split(',').map((x) => Number(x.trim())) : DEFAULT_SHIELDED_PCRS, ...(ekCaBundle ? { ekCaBundle } : {}) } : undefined;
      await using(fleetApi(dataDirOf(globals())), async (f) => {
        const p = await f.createPool(o.cluster, pool, servingOptions(o), shielded);
        if (fmt === 'json') printJson(p);
        else if (p.shielded)
          process.stdout.write(
            `Created shielded node pool ${p.name} in cluster ${o.cluster} (quotes PCRs ${p.shielded.pcrs.join(',')}).\n` +
              (p.shielded.ekCaBundle ? `TPMs with an EK certificate from its --ek-ca bundle enrol themselves: trustplane node join --shielded --pool ${p.name} ...\n` : '') +
              `Enroll each node's TPM with: trustplane node-pools enroll ${p.name} --cluster ${o.cluster} --ek-pub FILE --node-name NAME\n` +
              '(on the node, `trustplane node tpm ek --tcti TCTI > FILE` prints its EK)\n',
          );
        else process.stdout.write(`Created node pool ${p.name} in cluster ${o.cluster}.\nMake a join token with: trustplane node-pools bootstrap-token ${p.name} --cluster ${o.cluster}\n`);
      });
    });

  pools
    .command('enroll <pool>')
    .description("enroll a node's TPM in a shielded pool: the TPM with this EK, and only it, may then join as the node")
    .requiredOption('--cluster <name>', 'the cluster')
    .requiredOption('--ek-pub <file>', "the TPM's endorsement key, PEM (`trustplane node tpm ek` prints it on the node)")
    .requiredOption('--node-name <name>', 'the node name the TPM may join as')
    .option('--pcr-values <file>', 'expected PCR values, JSON (`trustplane node tpm pcrs`); default: pinned by the node\'s first attestation')
    .option('--replace', 'replace the TPM enrolled for the node')
    .option('-o, --output <format>', 'json')
    .action(async (pool: string, o: { cluster: string; ekPub: string; nodeName: string; pcrValues?: string; replace?: boolean; output?: string }) => {
      const fmt = fmtOf(o);
      const read = (file: string, what: string) => {
        try {
          return readFileSync(file, 'utf8');
        } catch (e) {
          throw invalid(`cannot read ${what} ${file}: ${(e as Error).message}`);
        }
      };
      const ekPublic = read(o.ekPub, '--ek-pub');
      let pcrValues: Record<string, string> | undefined;
      if (o.pcrValues) {
        try {
          pcrValues = JSON.parse(read(o.pcrValues, '--pcr-values')) as Record<string, string>;
        } catch (e) {
          throw invalid(`--pcr-values ${o.pcrValues} is not JSON: ${(e as Error).message}`, 'write it with `trustplane node tpm pcrs --tcti TCTI > FILE`');
        }
      }
      await using(fleetApi(dataDirOf(globals())), async (f) => {
        const e = await f.enrollNode(o.cluster, pool, { nodeName: o.nodeName, ekPublic, ...(pcrValues ? { pcrValues } : {}), ...(o.replace ? { replace: true } : {}) });
        if (fmt === 'json') printJson(e);
        else
          process.stdout.write(
            `Enrolled the TPM with EK sha256:${e.ekFingerprint} as node ${e.nodeName} of shielded pool ${e.pool} (cluster ${o.cluster}); PCRs ${e.pcrs.join(',')} ` +
              `${e.pcrValuesFrom === 'enrollment' ? 'must have the values given' : 'are pinned by its first attestation'}.\n` +
              `On the node, run: trustplane node join --shielded --tcti TCTI --server URL --ca-cert-hash HASH --name ${e.nodeName}\n`,
          );
      });
    });

  pools
    .command('enrollments <pool>')
    .description('list the TPMs enrolled in a shielded pool')
    .requiredOption('--cluster <name>', 'the cluster')
    .option('-o, --output <format>', 'json')
    .action(async (pool: string, o: { cluster: string; output?: string }) => {
      const fmt = fmtOf(o);
      await using(fleetApi(dataDirOf(globals())), async (f) => {
        const list = await f.listEnrollments(o.cluster, pool);
        if (fmt === 'json') printJson(list);
        else printTable(['NODE', 'EK-SHA256', 'ENROLLED', 'BY', 'PCR-VALUES'], list.map((e) => [e.nodeName, e.ekFingerprint, e.enrolledAt, e.enrolledBy, e.pcrValuesFrom]));
      });
    });

  pools
    .command('unenroll <pool>')
    .description("remove a node's enrolled TPM: it can no longer attest (its current certificate lives until it expires or is revoked)")
    .requiredOption('--cluster <name>', 'the cluster')
    .requiredOption('--node-name <name>', 'the node')
    .action(async (pool: string, o: { cluster: string; nodeName: string }) => {
      await using(fleetApi(dataDirOf(globals())), async (f) => {
        await f.unenrollNode(o.cluster, pool, o.nodeName);
        process.stdout.write(`Removed the TPM enrolled for node ${o.nodeName} in pool ${pool}.\n`);
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
        else
          printTable(
            ['NAME', 'CREATED', 'ALLOWED-CIDRS', 'DNS-SUFFIXES', 'SHIELDED'],
            list.map((p) => [p.name, p.createdAt, (p.allowedCidrs ?? []).join(',') || '-', (p.dnsSuffixes ?? []).join(',') || '-', p.shielded ? `pcrs ${p.shielded.pcrs.join(',')}` : '-']),
          );
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
