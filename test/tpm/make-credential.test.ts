// MakeCredential in TypeScript against tpm2-tools and a real software TPM: byte for byte what `tpm2_makecredential`
// makes for the same seed, activated by swtpm for the right AK only; and the TPM2 structures it reads.
import assert from 'node:assert/strict';
import { constants, generateKeyPairSync, privateDecrypt, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { TpmDriver } from '../../src/tpm/driver.js';
import { credentialFile, kdfa, makeCredential, parseCredentialFile } from '../../src/tpm/make-credential.js';
import { akAttributesProblem, parseTpm2bPublic, TPMA } from '../../src/tpm/structures.js';
import { startSwtpm, type SoftTpm } from '../helpers/swtpm.js';
import { tempDir } from '../helpers/tmp.js';
import { spawnSync } from 'node:child_process';

describe('TPM2 MakeCredential (TypeScript)', () => {
  const tmp = tempDir('tp-makecred-');
  let tpm: SoftTpm;
  let driver: TpmDriver;
  before(async () => {
    tpm = await startSwtpm();
    driver = new TpmDriver(tpm.tcti);
  });
  after(async () => {
    driver?.close();
    await tpm?.stop();
    tmp.remove();
  });

  test('KDFa matches the SP 800-108 construction: counter, label with its zero, contexts, bit length', () => {
    // Two blocks of HMAC-SHA256 truncated to 40 bytes: the second block is used, and the output is deterministic.
    const k = kdfa('sha256', Buffer.alloc(32, 1), 'STORAGE', Buffer.from('u'), Buffer.alloc(0), 320);
    assert.equal(k.length, 40);
    assert.deepEqual(kdfa('sha256', Buffer.alloc(32, 1), 'STORAGE\0', Buffer.from('u'), Buffer.alloc(0), 320), k, 'a label given with its zero is the same label');
    assert.notDeepEqual(kdfa('sha256', Buffer.alloc(32, 1), 'INTEGRITY', Buffer.from('u'), Buffer.alloc(0), 320), k);
  });

  test('the same bytes as tpm2_makecredential for the seed it chose (an RSA "EK" whose private key the test holds)', () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const ekPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    writeFileSync(join(tmp.path, 'soft-ek.pem'), ekPem);
    const name = Buffer.concat([Buffer.from([0x00, 0x0b]), randomBytes(32)]);
    const secret = randomBytes(32);
    writeFileSync(join(tmp.path, 'secret.bin'), secret);
    const r = spawnSync(
      'tpm2_makecredential',
      ['--tcti', 'none', '-u', join(tmp.path, 'soft-ek.pem'), '-G', 'rsa', '-s', join(tmp.path, 'secret.bin'), '-n', name.toString('hex'), '-o', join(tmp.path, 'ref.blob')],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    const ref = parseCredentialFile(readFileSync(join(tmp.path, 'ref.blob')));
    const seed = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: Buffer.from('IDENTITY\0', 'latin1') }, ref.encryptedSecret);
    const ours = makeCredential(ekPem, name, secret, seed);
    assert.deepEqual(ours.credentialBlob, ref.credentialBlob, 'TPM2B_ID_OBJECT (integrity HMAC + encrypted credential) equals tpm2-tools\'');
    // The encrypted seed is randomised by OAEP: ours must decrypt to the same seed.
    assert.deepEqual(privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: Buffer.from('IDENTITY\0', 'latin1') }, ours.encryptedSecret), seed);
    assert.deepEqual(parseCredentialFile(credentialFile(ours)).credentialBlob, ours.credentialBlob);
  });

  test('swtpm activates our credential for its AK, and refuses one made for another name', async () => {
    const ek = await driver.ekPublicPem();
    const ak = await driver.createAk();
    const pub = parseTpm2bPublic(ak.publicArea);
    assert.deepEqual(pub.name, ak.name, 'the name computed from the public area is the one the TPM reports');
    assert.equal(akAttributesProblem(pub.attributes), undefined);
    const secret = randomBytes(32);
    assert.deepEqual(await driver.activateCredential(credentialFile(makeCredential(ek, pub.name, secret))), secret);
    const otherName = Buffer.concat([pub.name.subarray(0, 2), randomBytes(32)]);
    await assert.rejects(driver.activateCredential(credentialFile(makeCredential(ek, otherName, secret))), /tpm2_activatecredential failed/);
    // A credential made against another EK cannot be opened either.
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    await assert.rejects(driver.activateCredential(credentialFile(makeCredential(other, pub.name, secret))), /tpm2_activatecredential failed/);
  });

  test('an AK public area with restricted cleared has another name and is not an attestation key', async () => {
    const ak = await driver.createAk();
    const buf = Buffer.from(ak.publicArea);
    // TPM2B size(2) type(2) nameAlg(2) then the 32-bit attributes.
    const attrs = buf.readUInt32BE(6);
    buf.writeUInt32BE(attrs & ~TPMA.restricted, 6);
    const pub = parseTpm2bPublic(buf);
    assert.notDeepEqual(pub.name, ak.name);
    assert.match(akAttributesProblem(pub.attributes) ?? '', /lack restricted/);
    assert.match(akAttributesProblem(attrs | TPMA.decrypt) ?? '', /include decrypt/);
  });

  test('truncated and padded structures are refused', async () => {
    const ak = await driver.createAk();
    assert.throws(() => parseTpm2bPublic(ak.publicArea.subarray(0, ak.publicArea.length - 1)), /truncated/);
    assert.throws(() => parseTpm2bPublic(Buffer.concat([ak.publicArea, Buffer.from([0])])), /after its end/);
    assert.throws(() => parseCredentialFile(Buffer.from('nope')), /not a tpm2-tools credential file/);
  });
});
