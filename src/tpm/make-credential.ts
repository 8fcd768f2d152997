// TPM2 MakeCredential in software (TPM 2.0 part 1 §24, part 3 §12.6): a secret only the TPM holding a given EK can
// recover, and only for the key of a given name loaded in that same TPM (ActivateCredential).
//
// RSA EKs only (the TCG default EK template: RSA 2048, SHA-256, AES-128-CFB); an ECC EK is refused with what to do.
import { createCipheriv, createHmac, createPublicKey, constants, publicEncrypt, randomBytes, type KeyObject } from 'node:crypto';
import { invalid } from '../util/errors.js';
import { TPM_ALG, tpm2b } from './structures.js';

/** The file `tpm2_makecredential -o` writes and `tpm2_activatecredential -i` reads: magic, version, the two TPM2Bs. */
const CREDENTIAL_FILE_MAGIC = 0xbadcc0de;

export interface MadeCredential {
  /** TPM2B_ID_OBJECT: integrity HMAC and the encrypted credential. */
  credentialBlob: Buffer;
  /** TPM2B_ENCRYPTED_SECRET: the seed, RSA-OAEP-encrypted to the EK. */
  encryptedSecret: Buffer;
}

/** KDFa (TPM 2.0 part 1 §11.4.10.2): SP 800-108 counter-mode KDF with HMAC, label with its terminating zero. */
export function kdfa(hash: string, key: Buffer, label: string, contextU: Buffer, contextV: Buffer, bits: number): Buffer {
  const out: Buffer[] = [];
  const bitsBuf = Buffer.alloc(4);
  bitsBuf.writeUInt32BE(bits);
  const labelBuf = Buffer.from(label.endsWith('\0') ? label : `${label}\0`, 'latin1');
  let len = 0;
  for (let i = 1; len < bits / 8; i++) {
    const counter = Buffer.alloc(4);
    counter.writeUInt32BE(i);
    const block = createHmac(hash, key).update(counter).update(labelBuf).update(contextU).update(contextV).update(bitsBuf).digest();
    out.push(block);
    len += block.length;
  }
  return Buffer.concat(out).subarray(0, bits / 8);
}

/**
 * MakeCredential against an RSA EK for the object named `objectName` (nameAlg || digest). `credential` is at most the
 * digest size of the EK's name algorithm (SHA-256: 32 bytes).
 */
export function makeCredential(ekPublic: KeyObject | string, objectName: Buffer, credential: Buffer, seed: Buffer = randomBytes(32)): MadeCredential {
  const ek = typeof ekPublic === 'string' ? createPublicKey(ekPublic) : ekPublic;
  if (ek.asymmetricKeyType !== 'rsa') {
    throw invalid(`the endorsement key is ${ek.asymmetricKeyType ?? 'not RSA'}; credential activation is implemented for RSA endorsement keys`, 'enroll the TPM\'s RSA EK (`trustplane node tpm ek` prints it; `tpm2_createek -G rsa`)');
  }
  if (credential.length > 32) throw invalid('a credential holds at most 32 bytes (the SHA-256 digest size)');
  // The TCG default RSA EK template: name algorithm SHA-256, symmetric AES-128 in CFB mode.
  const hash = 'sha256';
  const encryptedSecret = publicEncrypt({ key: ek, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash, oaepLabel: Buffer.from('IDENTITY\0', 'latin1') }, seed);
  const symKey = kdfa(hash, seed, 'STORAGE', objectName, Buffer.alloc(0), 128);
  const cipher = createCipheriv('aes-128-cfb', symKey, Buffer.alloc(16));
  const encIdentity = Buffer.concat([cipher.update(tpm2b(credential)), cipher.final()]);
  const hmacKey = kdfa(hash, seed, 'INTEGRITY', Buffer.alloc(0), Buffer.alloc(0), 256);
  const integrity = createHmac(hash, hmacKey).update(encIdentity).update(objectName).digest();
  return { credentialBlob: Buffer.concat([tpm2b(integrity), encIdentity]), encryptedSecret };
}

/** The credential as tpm2-tools' file: what the agent hands `tpm2_activatecredential -i`. */
export function credentialFile(c: MadeCredential): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(CREDENTIAL_FILE_MAGIC, 0);
  head.writeUInt32BE(1, 4);
  return Buffer.concat([head, tpm2b(c.credentialBlob), tpm2b(c.encryptedSecret)]);
}

/** Reads tpm2-tools' credential file back (tests compare ours with `tpm2_makecredential`'s). */
export function parseCredentialFile(buf: Buffer): MadeCredential {
  if (buf.length < 12 || buf.readUInt32BE(0) !== CREDENTIAL_FILE_MAGIC || buf.readUInt32BE(4) !== 1) throw invalid('not a tpm2-tools credential file (magic 0xBADCC0DE, version 1)');
  let pos = 8;
  const take = () => {
    const n = buf.readUInt16BE(pos);
    const v = buf.subarray(pos + 2, pos + 2 + n);
    if (v.length !== n) throw invalid('the credential file is truncated');
    pos += 2 + n;
    return Buffer.from(v);
  };
  const credentialBlob = take();
  const encryptedSecret = take();
  if (pos !== buf.length) throw invalid('the credential file has bytes after its end');
  return { credentialBlob, encryptedSecret };
}

export { TPM_ALG };
