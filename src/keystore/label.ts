// Key labels: the caller's names for keys, unique within one store.
import { invalid } from '../util/errors.js';

/** Labels are the caller's names for keys: 1–200 printable characters. */
export function checkLabel(label: unknown): string {
  if (typeof label !== 'string' || label.length === 0 || label.length > 200) {
    throw invalid('a key label must be a string of 1 to 200 characters');
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(label)) throw invalid(`key label ${JSON.stringify(label)} contains control characters`);
  return label;
}
