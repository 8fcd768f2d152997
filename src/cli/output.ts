// Printing for every command: tables for people, `-o json` for programs.
import { invalid } from '../util/errors.js';

export type OutputFormat = 'table' | 'json';

export function outputFormat(v: string | undefined): OutputFormat {
  if (v === undefined || v === 'table' || v === 'wide') return 'table';
  if (v === 'json') return 'json';
  throw invalid(`output format "${v}" is not supported`, 'use -o json, or leave -o out for a table');
}

export function printJson(v: unknown): void {
  process.stdout.write(JSON.stringify(v, null, 2) + '\n');
}

export function printTable(headers: string[], rows: string[][]): void {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('   ');
  process.stdout.write([line(headers), ...rows.map(line)].join('\n') + '\n');
}

/**
 * Asks the user to type `name` before something that cannot be undone; without a terminal, refuses (pass --yes).
 * `what` finishes "refusing to ... without confirmation" and "nothing was ...".
 */
export async function confirmByName(question: string, name: string, what: { doing: string; undone: string }): Promise<void> {
  if (!process.stdin.isTTY) throw invalid(`refusing to ${what.doing} without confirmation`, 'pass --yes');
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  const answer = await rl.question(`${question} Type the name to confirm: `);
  rl.close();
  if (answer.trim() !== name) throw invalid(`not confirmed; nothing was ${what.undone}`);
}
