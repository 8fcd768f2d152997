#!/usr/bin/env node
// The trustplane command: runs the compiled CLI.
import { main } from '../dist/src/cli/main.js';
main(process.argv.slice(2)).then(
  (code) => { if (typeof code === 'number') process.exitCode = code; },
  (err) => { console.error(err?.stack ?? String(err)); process.exitCode = 1; },
);
