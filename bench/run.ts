// `npm run bench [-- PREFIX...]`: runs every benchmark (or those with a figure name starting with a prefix) and prints one JSON line per figure.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Benchmark, BenchResult } from './lib.js';

/**
 * Ctrl-C or SIGTERM in the middle of a benchmark skips its cleanup: stop the processes it started (this process's own
 * children, by PID: control planes, etcd members) before leaving, so none is left behind.
 */
function stopChildrenOnSignal(): void {
  const stop = (signal: NodeJS.Signals) => {
    const r = spawnSync('ps', ['-o', 'pid=', '--ppid', String(process.pid)], { encoding: 'utf8' });
    const pids = r.stdout.split('\n').map((l) => Number(l.trim())).filter((pid) => pid > 0 && pid !== r.pid);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    process.stderr.write(`bench: ${signal}: stopped ${pids.length} child process(es)\n`);
    process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

async function main() {
  stopChildrenOnSignal();
  const prefixes = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const here = dirname(fileURLToPath(import.meta.url));
  const files = readdirSync(here).filter((f) => f.endsWith('.bench.js')).sort();
  const results: BenchResult[] = [];
  let ran = 0;
  for (const f of files) {
    const mod = (await import(pathToFileURL(join(here, f)).href)) as { default: Benchmark };
    const b = mod.default;
    if (prefixes.length && !b.names.some((n) => prefixes.some((p) => n.startsWith(p)))) continue;
    ran++;
    process.stderr.write(`bench: ${f} (${b.names.join(', ')})\n`);
    const rs = await b.run();
    results.push(...rs);
  }
  if (ran === 0) {
    console.error(`no benchmark matches ${prefixes.join(' ')}`);
    process.exit(1);
  }
  for (const r of results) console.log(JSON.stringify(r));
}

main().catch((e) => {
  console.error(`bench: ${(e as Error).message ?? e}`);
  if (process.env.BENCH_DEBUG) console.error(e);
  process.exit(1);
});
