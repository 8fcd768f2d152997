// The trustplane command: global flags, the command groups, and one way of turning errors into messages and exit codes.
import { Command, CommanderError } from 'commander';
import { TrustplaneError } from '../util/errors.js';
import { restrictUmask } from '../util/files.js';
import * as ca from './ca.js';
import * as clusters from './clusters.js';
import type { GlobalOptions } from './context.js';
import * as store from './store.js';
import * as node from './node.js';
import * as nodePools from './node-pools.js';
import * as nodes from './nodes.js';
import * as serve from './serve.js';
import * as up from './up.js';
import { escapeForTerminal, safe } from './output.js';

export async function main(argv: string[]): Promise<number> {
  // Every process of trustplane runs this main: what it (and SQLite, and etcd under it) creates is the owner's only.
  restrictUmask();
  const program = new Command('trustplane');
  program
    .description('trustplane: a cluster trust control plane (per-cluster CAs with non-exportable keys, node TLS bootstrap, mTLS everywhere)')
    .option('--data-dir <dir>', 'where the local control plane keeps its state (default ./.trustplane or $TRUSTPLANE_DATA_DIR)')
    .showHelpAfterError()
    .exitOverride();
  // Every command accepts --data-dir, before or after its name; the nearest one wins.
  let current: GlobalOptions = {};
  const globals = (): GlobalOptions => current;
  for (const group of [up, serve, ca, clusters, nodePools, nodes, store, node]) group.register(program, globals);
  program.commands.forEach(function walk(c: Command) {
    c.exitOverride();
    if (c.commands.length === 0 && !c.options.some((o) => o.long === '--data-dir'))
      c.option('--data-dir <dir>', 'where the local control plane keeps its state (default ./.trustplane or $TRUSTPLANE_DATA_DIR)');
    c.commands.forEach(walk);
  });
  program.hook('preAction', (_root, action) => {
    current = { dataDir: action.opts<GlobalOptions>().dataDir ?? program.opts<GlobalOptions>().dataDir };
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    if (e instanceof TrustplaneError) {
      // A message may quote what a peer sent (a certificate's CN, a node's answer): escaped, never acted on by the terminal.
      process.stderr.write(safe`error: ${e.message}` + '\n' + (e.hint ? safe`hint: ${e.hint}` + '\n' : ''));
      return e.exitCode;
    }
    process.stderr.write(`error: ${escapeForTerminal((e as Error)?.stack ?? String(e), { keepNewlines: true })}\n`);
    return 1;
  }
}
