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

/**
 * Characters that would act on a terminal instead of showing: C0 and C1 controls (NUL, newline, ESC starting an ANSI
 * sequence, CSI), DEL, the line and paragraph separators, the bidirectional overrides that reorder what is shown, and the
 * backslash (so that an escaped "\\n" cannot pass for a real one).
 */
const UNSAFE = /[\x00-\x1f\x7f-\x9f\\\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\\': '\\\\' };

/**
 * A name from a certificate or a request (a node name, an address, a CN, a node's answer), made safe to print for a
 * person: each character that a terminal would act on becomes a visible escape (\n, \x00, \x1b, \u202e). `keepNewlines`
 * leaves the line breaks and backslashes of multi-line text (a log) alone. `-o json` needs none of this: JSON escapes them itself.
 */
export function escapeForTerminal(text: string, o: { keepNewlines?: boolean } = {}): string {
  return text.replace(UNSAFE, (c) => {
    // A log is read as lines of JSON: its line breaks and its own backslash escapes stay as they are.
    if (o.keepNewlines && (c === '\n' || c === '\\')) return c;
    const named = NAMED[c];
    if (named) return named;
    const code = c.charCodeAt(0);
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/** A tagged template for human-readable lines: what is interpolated is escaped (escapeForTerminal), the text around it is not. */
export function safe(strings: TemplateStringsArray, ...values: unknown[]): string {
  return strings.reduce((out, s, i) => out + s + (i < values.length ? escapeForTerminal(String(values[i])) : ''), '');
}

/** Every cell is escaped: tables show names from certificates, requests and nodes. */
export function printTable(headers: string[], rawRows: string[][]): void {
  const rows = rawRows.map((r) => r.map((c) => escapeForTerminal(c ?? '')));
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
