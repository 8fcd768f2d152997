// Control characters from certificates, requests and nodes (NUL, newline, ANSI escapes) never reach the terminal raw:
// the CLI's tables and messages show them escaped; `-o json` carries them as JSON escapes.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { escapeForTerminal, printTable, safe } from '../../src/cli/output.js';
import { SIGNER_CONTROL_PLANE_COMPONENT } from '../../src/pki/signer-names.js';
import { tp } from '../helpers/cli.js';
import { ClusterWithNodes } from '../helpers/cluster-nodes.js';
import { opensslCsr } from '../helpers/openssl.js';

const HOSTILE = 'a\nb\x00c\x1b[31mred\x1b[0m\r\u202eevil\\n';
const ESCAPED = 'a\\nb\\x00c\\x1b[31mred\\x1b[0m\\r\\u202eevil\\\\n';
/** Anything a terminal would act on: C0/C1 controls except the newline that ends lines, DEL, bidi overrides. */
const RAW_CONTROL = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;

function captureStdout(fn: () => void): string {
  let out = '';
  const write = process.stdout.write;
  process.stdout.write = ((chunk: string | Uint8Array) => ((out += String(chunk)), true)) as typeof process.stdout.write;
  try {
    fn();
  } finally {
    process.stdout.write = write;
  }
  return out;
}

describe('escapeForTerminal', () => {
  test('controls, DEL, C1, bidi overrides and the backslash become visible escapes; other text is kept', () => {
    assert.equal(escapeForTerminal(HOSTILE), ESCAPED);
    assert.equal(escapeForTerminal('\x7f\x9b\t\u2028'), '\\x7f\\x9b\\t\\u2028');
    assert.equal(escapeForTerminal('demo-node-1 10.0.0.1 ünïcode ✓'), 'demo-node-1 10.0.0.1 ünïcode ✓');
    // A log keeps its lines and its JSON escapes; its controls are still escaped.
    assert.equal(escapeForTerminal('{"msg":"a\\"b"}\n\x1b[2J{"msg":"c"}\n', { keepNewlines: true }), '{"msg":"a\\"b"}\n\\x1b[2J{"msg":"c"}\n');
  });

  test('safe`` escapes only what is interpolated', () => {
    assert.equal(safe`node ${HOSTILE}: ok\n`, `node ${ESCAPED}: ok\n`);
  });

  test('printTable escapes every cell and keeps the columns aligned', () => {
    const out = captureStdout(() => printTable(['NAME', 'VERSION'], [[HOSTILE, 'v1'], ['b', '\x1b[31m']]));
    assert.doesNotMatch(out, RAW_CONTROL);
    const lines = out.trimEnd().split('\n');
    assert.equal(lines.length, 3, 'one line per row: a newline in a cell does not start a row');
    assert.equal(lines[1], `${ESCAPED}   v1`);
    assert.equal(lines[2], `${'b'.padEnd(ESCAPED.length)}   \\x1b[31m`);
  });
});

describe('the CLI shows hostile names escaped (real processes)', () => {
  const env = new ClusterWithNodes('tp-escape-');
  after(() => env.cleanup());

  test('nodes list shows a Node whose status holds NUL, newline and ANSI escapes escaped; a refused CN in an error too', async () => {
    const cp = await env.start();
    await cp.fleet().create({ name: 'esc' });
    const { client: api } = await env.admin('esc');
    // What a node writes of itself: its addresses and its agent version.
    await api.post('/api/v1/nodes', {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: 'esc-node-1' },
      status: { addresses: [{ type: 'Hostname', address: HOSTILE }], nodeInfo: { kubeletVersion: 'v1\x00\x1b[31m' } },
    });
    const list = tp(['nodes', 'list', '--cluster', 'esc', '--data-dir', env.dataDir]);
    assert.equal(list.status, 0, list.stderr);
    assert.doesNotMatch(list.stdout, RAW_CONTROL);
    assert.ok(list.stdout.includes(ESCAPED), list.stdout);
    assert.ok(list.stdout.includes('v1\\x00\\x1b[31m'), list.stdout);
    assert.equal(list.stdout.trimEnd().split('\n').length, 2, 'a header and one row');
    // -o json: the same text, as JSON escapes it.
    const json = tp(['nodes', 'list', '--cluster', 'esc', '--data-dir', env.dataDir, '-o', 'json']);
    assert.equal(json.status, 0, json.stderr);
    assert.deepEqual((JSON.parse(json.stdout) as { nodes: { addresses: string[] }[] }).nodes[0].addresses, [HOSTILE]);

    // A CSR whose CN holds a newline and an ANSI escape (openssl writes them; a NUL cannot pass through its argv), refused by
    // the CA service with the CN quoted in the reason.
    const csrFile = join(env.tmp.path, 'hostile.csr');
    writeFileSync(csrFile, opensslCsr(env.tmp.path, 'hostile', { subj: '/CN=x\n\x1b[31my' }));
    const sign = tp(['ca', 'sign', '--cluster', 'esc', '--signer', SIGNER_CONTROL_PLANE_COMPONENT, '--csr', csrFile, '--data-dir', env.dataDir]);
    assert.notEqual(sign.status, 0);
    assert.match(sign.stderr, /^error: /);
    assert.doesNotMatch(sign.stderr, RAW_CONTROL);
    assert.ok(sign.stderr.includes('x\\n\\x1b[31my'), sign.stderr);
  });
});
