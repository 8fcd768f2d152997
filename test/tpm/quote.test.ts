// Quote verification against quotes a real software TPM made: signature, nonce, PCR selection and digest; and
// tpm2_pcrread's output as the agent reads it.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { parsePcrRead, TpmDriver } from '../../src/tpm/driver.js';
import { quoteQualifyingData, verifyQuote } from '../../src/tpm/quote.js';
import { parseQuoteAttest, parseTpm2bPublic } from '../../src/tpm/structures.js';
import { startSwtpm, type SoftTpm } from '../helpers/swtpm.js';

const PCRS = [0, 1, 2, 3, 7];

describe('TPM2 quote verification', () => {
  let tpm: SoftTpm;
  let driver: TpmDriver;
  before(async () => {
    tpm = await startSwtpm();
    driver = new TpmDriver(tpm.tcti);
  });
  after(async () => {
    driver?.close();
    await tpm?.stop();
  });

  test('a quote of the AK verifies; another nonce, another PCR value, another selection, a flipped bit or another AK do not', async () => {
    const ak = await driver.createAk();
    const pub = parseTpm2bPublic(ak.publicArea);
    await driver.extendPcr(7, 'aa'.repeat(32));
    const nonce = randomBytes(32);
    const spki = randomBytes(91);
    const qd = quoteQualifyingData(nonce, spki);
    const q = await driver.quote(qd, PCRS);
    const values = await driver.readPcrs(PCRS);
    assert.equal(Object.keys(values).length, 5);
    assert.notEqual(values['7'], '0'.repeat(64), 'PCR 7 was extended');

    const v = verifyQuote(pub, q.attest, q.signature, qd, PCRS, values);
    assert.deepEqual(v.pcrs, PCRS);
    const attest = parseQuoteAttest(q.attest);
    assert.deepEqual(attest.qualifiedSigner.subarray(0, 2), pub.name.subarray(0, 2));
    assert.deepEqual(attest.extraData, qd);

    assert.throws(() => verifyQuote(pub, q.attest, q.signature, quoteQualifyingData(randomBytes(32), spki), PCRS, values), /another nonce/);
    assert.throws(() => verifyQuote(pub, q.attest, q.signature, quoteQualifyingData(nonce, randomBytes(91)), PCRS, values), /another nonce/);
    assert.throws(() => verifyQuote(pub, q.attest, q.signature, qd, PCRS, { ...values, '7': '0'.repeat(64) }), /do not match the digest/);
    assert.throws(() => verifyQuote(pub, q.attest, q.signature, qd, [0, 1, 2, 3], values), /not the pool's 0,1,2,3/);
    const flipped = Buffer.from(q.attest);
    flipped[flipped.length - 1] ^= 1;
    assert.throws(() => verifyQuote(pub, flipped, q.signature, qd, PCRS, values), /signature does not verify/);
    const other = parseTpm2bPublic((await driver.createAk()).publicArea);
    assert.throws(() => verifyQuote(other, q.attest, q.signature, qd, PCRS, values), /signature does not verify/);
  });

  test('tpm2_pcrread output is read per bank, SHA-256 only', () => {
    const out = '  sha1:\n    0 : 0x' + '11'.repeat(20) + '\n  sha256:\n    0 : 0x' + 'AB'.repeat(32) + '\n    7 : 0x' + '00'.repeat(32) + '\n';
    assert.deepEqual(parsePcrRead(out), { '0': 'ab'.repeat(32), '7': '00'.repeat(32) });
  });

  test('a structure that is not a quote is refused before anything else is read', () => {
    assert.throws(() => parseQuoteAttest(Buffer.from('ff54434780170000', 'hex')), /not a quote/);
    assert.throws(() => parseQuoteAttest(Buffer.from('00000000', 'hex')), /TPM_GENERATED_VALUE/);
  });
});
