// Fuzz target: arbitrary bytes into the CSR parser (PEM or DER, signature checked) and the strict DER reader under it.
import { parseCsr } from '../../src/pki/csr.js';
import { DerReader } from '../../src/pki/der.js';
import { isClientRefusal, refusalsOnly } from '../refusals.js';

/** Reads every top-level element and checks it is well-formed DER all the way down, as for a value nobody interprets. */
function readAnyDer(data: Buffer): void {
  const r = DerReader.over(data, 'fuzz input');
  while (!r.atEnd) r.wellFormed(r.any('element'), 'element');
}

export function fuzz(data: Buffer): void {
  refusalsOnly(() => parseCsr(data), isClientRefusal);
  refusalsOnly(() => readAnyDer(data), isClientRefusal);
}
