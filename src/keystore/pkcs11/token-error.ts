// Turns a PKCS#11 failure into a TrustplaneError whose message names the call and the CKR_ code (never a PIN or key bytes).
import { TrustplaneError } from '../../util/errors.js';

/** The CKR_ name of a pkcs11js error ("CKR_X" or, from some calls, "CKR_X:code"), or undefined when it is not one. */
export function ckr(e: unknown): string | undefined {
  const m = (e as { message?: unknown } | null)?.message;
  return typeof m === 'string' ? /^(CKR_[A-Z0-9_]+)/.exec(m)?.[1] : undefined;
}

export function tokenError(call: string, e: unknown): TrustplaneError {
  const code = ckr(e);
  switch (code) {
    case 'CKR_PIN_INCORRECT':
    case 'CKR_PIN_INVALID':
    case 'CKR_PIN_LEN_RANGE':
      return new TrustplaneError('Invalid', `the token refused the PIN (${code})`, 'check the configured PKCS#11 "pin"');
    case 'CKR_PIN_LOCKED':
    case 'CKR_PIN_EXPIRED':
      return new TrustplaneError('Invalid', `the token's user PIN cannot be used (${code})`, 'unlock or reset the PIN with the token\'s SO tools');
    case 'CKR_OBJECT_HANDLE_INVALID':
    case 'CKR_KEY_HANDLE_INVALID':
      return new TrustplaneError('NotFound', `the key is no longer on the token (${call}: ${code})`);
    case 'CKR_MECHANISM_INVALID':
    case 'CKR_TEMPLATE_INCONSISTENT':
    case 'CKR_ATTRIBUTE_VALUE_INVALID':
    case 'CKR_DOMAIN_PARAMS_INVALID':
    case 'CKR_CURVE_NOT_SUPPORTED':
    case 'CKR_KEY_SIZE_RANGE':
      return new TrustplaneError('Invalid', `the token does not support this request (${call}: ${code})`);
    case undefined: {
      const detail = e instanceof Error ? e.message.split('\n')[0] : String(e);
      return new TrustplaneError('Internal', `PKCS#11 ${call} failed: ${detail}`);
    }
    default:
      return new TrustplaneError('Internal', `PKCS#11 ${call} failed: ${code}`);
  }
}
