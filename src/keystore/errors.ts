// The errors every key store raises the same way, so callers and the shared test suite see one vocabulary.
import { TrustplaneError } from '../util/errors.js';

export function keyNotFound(id: string): TrustplaneError {
  return new TrustplaneError('NotFound', `no key with id ${id} in this key store`, 'list the keys to see which ids exist');
}

export function labelInUse(label: string, id: string): TrustplaneError {
  return new TrustplaneError('AlreadyExists', `key label ${JSON.stringify(label)} is already used by key ${id}`, 'choose another label, or destroy that key first');
}

export function storeClosed(type: string): TrustplaneError {
  return new TrustplaneError('Internal', `the ${type} key store was closed; open it again to use its keys`);
}
