// Verifying a TPM2 quote: signed by the attestation key, a quote (magic, type), over the expected qualifying data, of
// the PCR values the node reports (their digest is what the TPM signed).
import { constants, createHash, verify } from 'node:crypto';
import { invalid } from '../util/errors.js';
import { hashAlg, parseQuoteAttest, parseSignature, TPM_ALG, type QuoteAttest, type TpmPublic } from './structures.js';

/** PCR index → value (hex), of one bank. */
export type PcrValues = Record<string, string>;

export interface VerifiedQuote {
  attest: QuoteAttest;
  /** The SHA-256 PCR indices quoted, ascending. */
  pcrs: number[];
  pcrDigestHex: string;
}

/**
 * Checks the quote `attestBytes` (TPMS_ATTEST) and its `signatureBytes` (TPMT_SIGNATURE) made by `ak`: the signature,
 * the magic and type, extraData == `extraData`, the selection == `pcrs` of the SHA-256 bank, and the digest of `values`
 * in index order == the signed pcrDigest. Throws Invalid saying which check failed.
 */
export function verifyQuote(ak: TpmPublic, attestBytes: Buffer, signatureBytes: Buffer, extraData: Buffer, pcrs: number[], values: PcrValues): VerifiedQuote {
  const sig = parseSignature(signatureBytes);
  const h = hashAlg(sig.hash, 'the quote signature');
  const ok =
    sig.sigAlg === TPM_ALG.ECDSA
      ? ak.type === 'ecc' && verify(h.name, attestBytes, { key: ak.publicKey, dsaEncoding: 'ieee-p1363' }, sig.signature)
      : ak.type === 'rsa' &&
        verify(h.name, attestBytes, { key: ak.publicKey, padding: sig.sigAlg === TPM_ALG.RSAPSS ? constants.RSA_PKCS1_PSS_PADDING : constants.RSA_PKCS1_PADDING }, sig.signature);
  if (!ok) throw invalid('the quote signature does not verify with the attestation key: the quote was not made by this AK');
  // Parsed only once signed: nothing unsigned is read.
  const attest = parseQuoteAttest(attestBytes);
  if (!attest.qualifiedSigner.subarray(0, 2).equals(ak.name.subarray(0, 2))) throw invalid('the quote names a signer of another name algorithm than the attestation key');
  if (!attest.extraData.equals(extraData)) throw invalid('the quote is over another nonce than this challenge\'s (a replayed or stale quote)');
  const banks = attest.pcrSelections.filter((s) => s.pcrs.length);
  if (banks.length !== 1 || banks[0].hash !== TPM_ALG.SHA256) throw invalid('the quote must select PCRs of the SHA-256 bank only');
  const want = [...pcrs].sort((a, b) => a - b);
  if (banks[0].pcrs.join(',') !== want.join(',')) throw invalid(`the quote selects PCRs ${banks[0].pcrs.join(',')}, not the pool's ${want.join(',')}`);
  const digest = createHash('sha256');
  for (const i of want) {
    const v = values[String(i)];
    if (typeof v !== 'string' || !/^[0-9a-f]{64}$/i.test(v)) throw invalid(`PCR ${i}'s value is missing or not 32 bytes of hex`);
    digest.update(Buffer.from(v, 'hex'));
  }
  const computed = digest.digest();
  if (!computed.equals(attest.pcrDigest)) throw invalid('the PCR values sent do not match the digest the TPM signed');
  return { attest, pcrs: want, pcrDigestHex: computed.toString('hex') };
}

/** What the quote's qualifying data must be: the challenge nonce bound to the key the node asks a certificate for. */
export function quoteQualifyingData(nonce: Buffer, csrSpki: Buffer): Buffer {
  return createHash('sha256').update('trustplane tpm attestation v1\0').update(nonce).update(createHash('sha256').update(csrSpki).digest()).digest();
}
