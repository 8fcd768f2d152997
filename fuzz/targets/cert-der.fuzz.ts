// Fuzz target: arbitrary bytes to the certificate parser (one PEM or DER certificate) and the PEM bundle reader (trust
// bundles, chains), which the CA service, the node agent and TLS reload read from files and peers.
import { parseCertificate, parseCertificates } from '../../src/pki/certificate.js';
import { isClientRefusal, refusalsOnly } from '../refusals.js';

export function fuzz(data: Buffer): void {
  refusalsOnly(() => parseCertificate(data), isClientRefusal);
  refusalsOnly(() => parseCertificates(data.toString('latin1')), isClientRefusal);
}
