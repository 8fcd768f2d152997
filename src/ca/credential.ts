// Getting a credential signed: make the key pair here, send only a CSR, keep the private key local.
import { buildCsr, generateKeyPair, pemEncode } from '../pki/index.js';
import type { KeyAlgorithm, Name, SubjectAltNames } from '../pki/types.js';

export interface LocalCredential {
  /** Leaf certificate followed by any intermediates, PEM. */
  cert: string;
  /** PKCS#8 private key, PEM: never sent anywhere. */
  key: string;
  notAfter?: string;
}

export async function localCredential(
  subject: Name,
  issue: (csrPem: string) => Promise<{ certificate: string; chain: string[]; notAfter?: string }>,
  o: { sans?: Partial<SubjectAltNames>; algorithm?: KeyAlgorithm } = {},
): Promise<LocalCredential> {
  const kp = await generateKeyPair(o.algorithm ?? { kind: 'ec', curve: 'P-256' });
  const csr = await buildCsr({ subject, sans: o.sans, signer: kp.signer });
  const issued = await issue(pemEncode('CERTIFICATE REQUEST', csr));
  return { cert: issued.certificate + issued.chain.join(''), key: kp.privateKeyPem, notAfter: issued.notAfter };
}
