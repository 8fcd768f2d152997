// `npm run fuzz -- NAME [options] [-- libFuzzer flags]`: runs one coverage-guided fuzz target with jazzer.js (see fuzz/README.md).
import { cpSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { installJazzerAddon } from './jazzer-addon.js';

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url)); // dist/fuzz
const root = resolve(here, '..', '..'); // the checkout: committed corpora live in its fuzz/corpus
const TARGET_SUFFIX = '.fuzz.js';

const USAGE = `usage: npm run fuzz -- NAME [options] [-- libFuzzer flags]

NAME is a target name or a unique prefix of one (--list shows them). Without --runs or --time it runs until stopped (Ctrl-C).
  --runs N          stop after N executions
  --time S          stop after S seconds
  --seed N          libFuzzer's random seed (default: one chosen and printed)
  --timeout S       an input running longer than S seconds is a hang (default 10)
  --max-len N       largest input to generate, in bytes (default: libFuzzer's choice from the corpus)
  --regression      run every committed corpus input once (and fuzz/findings/NAME if present), then stop
  --merge           add to fuzz/corpus/NAME the fewest work-corpus inputs that add coverage to it
  --work DIR        where new inputs and crash reproducers go (default fuzz/.work/NAME)
  --target FILE     fuzz a compiled target file instead of one under dist/fuzz/targets
  --list            print the target names`;

interface Args {
  name?: string;
  runs?: number;
  time?: number;
  seed?: number;
  timeout: number;
  maxLen?: number;
  regression: boolean;
  merge: boolean;
  work?: string;
  target?: string;
  list: boolean;
  libFuzzer: string[];
  /**
   * Set when libFuzzer runs this script as its worker (-merge, -fork, -jobs): jazzer's wrapper passes the file that
   * keeps coverage edge IDs the same across processes, and libFuzzer's own arguments after `--`, to be used as they are.
   */
  idSyncFile?: string;
}

function fail(message: string): never {
  process.stderr.write(`fuzz: ${message}\n`);
  process.exit(2);
}

function positiveInt(flag: string, v: string | undefined): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) fail(`${flag} needs a non-negative integer, not ${JSON.stringify(v ?? '')}`);
  return n;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { timeout: 10, regression: false, merge: false, list: false, libFuzzer: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => argv[++i];
    switch (arg) {
      case '--':
        a.libFuzzer = argv.slice(i + 1);
        return a;
      case '--runs':
        a.runs = positiveInt(arg, value());
        break;
      case '--time':
        a.time = positiveInt(arg, value());
        break;
      case '--seed':
        a.seed = positiveInt(arg, value());
        break;
      case '--timeout':
        a.timeout = positiveInt(arg, value());
        break;
      case '--max-len':
        a.maxLen = positiveInt(arg, value());
        break;
      case '--regression':
        a.regression = true;
        break;
      case '--merge':
        a.merge = true;
        break;
      case '--work':
        a.work = resolve(value() ?? fail('--work needs a directory'));
        break;
      case '--target':
        a.target = resolve(value() ?? fail('--target needs a file'));
        break;
      case '--list':
        a.list = true;
        break;
      case '--id_sync_file':
        a.idSyncFile = value();
        break;
      case '-h':
      case '--help':
        process.stdout.write(`${USAGE}\n`);
        process.exit(0);
      default:
        if (arg.startsWith('-')) fail(`unknown option ${arg}\n${USAGE}`);
        if (a.name) fail(`one target at a time: got ${a.name} and ${arg}`);
        a.name = arg;
    }
  }
  return a;
}

export function targetNames(): string[] {
  const dir = join(here, 'targets');
  return readdirSync(dir)
    .filter((f) => f.endsWith(TARGET_SUFFIX))
    .map((f) => f.slice(0, -TARGET_SUFFIX.length))
    .sort();
}

function pickTarget(prefix: string): string {
  const names = targetNames();
  if (names.includes(prefix)) return prefix;
  const matches = names.filter((n) => n.startsWith(prefix));
  if (matches.length === 1) return matches[0];
  if (matches.length === 0) fail(`no fuzz target starts with "${prefix}"; targets: ${names.join(', ')}`);
  return fail(`"${prefix}" names ${matches.length} targets (${matches.join(', ')}): give more of the name`);
}

/** Input files of a corpus folder that exists and is not empty. */
const hasInputs = (dir: string) => existsSync(dir) && readdirSync(dir).length > 0;

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.list) {
    process.stdout.write(`${targetNames().join('\n')}\n`);
    return;
  }
  if (!args.name && !args.target) fail(`name a target\n${USAGE}`);
  const name = args.target ? (args.name ?? 'custom') : pickTarget(args.name!);
  const targetFile = args.target ?? join(here, 'targets', `${name}${TARGET_SUFFIX}`);
  if (!existsSync(targetFile)) fail(`${targetFile} does not exist: run \`npx tsc -p tsconfig.json\` first`);
  const committed = join(root, 'fuzz', 'corpus', name);
  const findings = join(root, 'fuzz', 'findings', name);
  const work = args.work ?? join(root, 'fuzz', '.work', name);
  const workCorpus = join(work, 'corpus');
  const artifacts = join(work, 'artifacts');
  mkdirSync(workCorpus, { recursive: true });
  mkdirSync(artifacts, { recursive: true });

  // libFuzzer writes new inputs into the first corpus folder and only reads the others: the committed corpus stays as it is.
  let corpus = [workCorpus, ...(hasInputs(committed) ? [committed] : [])];
  const flags = [`-artifact_prefix=${artifacts}/`, `-timeout=${args.timeout}`, '-print_final_stats=1'];
  // Words of the input's language (JSON patch operations, selector operators) that mutations splice in.
  const dict = join(root, 'fuzz', 'dictionaries', `${name}.dict`);
  if (existsSync(dict)) flags.push(`-dict=${dict}`);
  if (args.seed !== undefined) flags.push(`-seed=${args.seed}`);
  if (args.maxLen !== undefined) flags.push(`-max_len=${args.maxLen}`);
  if (args.runs !== undefined) flags.push(`-runs=${args.runs}`);
  if (args.time !== undefined) flags.push(`-max_total_time=${args.time}`);
  if (args.regression) {
    // Each input of the committed corpus (and any open findings) once, nothing generated, nothing written.
    corpus = [committed, ...(hasInputs(findings) ? [findings] : [])].filter(hasInputs);
    if (corpus.length === 0) fail(`${committed} has no inputs`);
    flags.push('-runs=0');
  }
  if (args.merge && !args.idSyncFile) {
    // -merge=1 copies into the first folder the fewest inputs of the others that add coverage to it. The first is a
    // copy of the committed corpus, so seeds and regression inputs stay, and only what the work corpus adds joins them.
    const merged = join(work, 'merged');
    rmSync(merged, { recursive: true, force: true });
    mkdirSync(dirname(committed), { recursive: true });
    if (existsSync(committed)) cpSync(committed, merged, { recursive: true });
    else mkdirSync(merged, { recursive: true });
    corpus = [merged, workCorpus];
    // Edges only, not hit-count buckets: a third of the inputs for the same edge coverage, so corpora stay small.
    flags.push('-merge=1', '-use_counters=0');
    process.on('exit', (code) => {
      if (code !== 0 || !hasInputs(merged)) return;
      const before = hasInputs(committed) ? readdirSync(committed).length : 0;
      rmSync(committed, { recursive: true, force: true });
      // Same filesystem: a rename, so an interrupted merge leaves either the old corpus or the new one.
      renameSync(merged, committed);
      process.stderr.write(`fuzz: ${committed}: ${before} inputs before, ${readdirSync(committed).length} now\n`);
    });
  }

  installJazzerAddon((line) => process.stderr.write(`${line}\n`));
  const core = require('@jazzer.js/core') as typeof import('@jazzer.js/core');
  // A worker started by libFuzzer gets everything it needs in libFuzzer's own arguments.
  const fuzzerOptions = args.idSyncFile ? args.libFuzzer : [...corpus, ...flags, ...args.libFuzzer];
  const options = new core.OptionsManager(core.OptionSource.DefaultCLIOptions).merge(
    {
      fuzzTarget: targetFile,
      fuzzEntryPoint: 'fuzz',
      // Coverage of the project's own code guides the fuzzer; the libraries it calls are run uninstrumented.
      includes: [join(root, 'dist', 'src') + '/', join(root, 'dist', 'fuzz') + '/', dirname(targetFile) + '/'],
      excludes: ['node_modules'],
      sync: true,
      timeout: args.timeout * 1000,
      mode: 'fuzzing',
      fuzzerOptions,
      ...(args.idSyncFile ? { idSyncFile: args.idSyncFile } : {}),
    },
    core.OptionSource.CommandLineArguments,
  );
  if (!args.idSyncFile) process.stderr.write(`fuzz: target ${name} (${targetFile})\nfuzz: corpus ${corpus.join(' ')}\n`);
  const result = await core.startFuzzing(options);
  process.exitCode = result.returnCode;
}

main().catch((e) => {
  process.stderr.write(`fuzz: ${(e as Error)?.stack ?? e}\n`);
  process.exit(1);
});
