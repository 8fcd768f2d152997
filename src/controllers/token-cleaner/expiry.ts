// Which bootstrap tokens have expired, as a pure function (Kubernetes' tokencleaner deletes expired bootstrap token Secrets).
import type { BootstrapTokenInfo } from '../../apiserver/index.js';

/** Tokens whose expiry is at or before `now`: the API server already refuses them; they are only clutter (and hashes). */
export function expiredTokens<T extends Pick<BootstrapTokenInfo, 'id' | 'expiresAt'>>(tokens: readonly T[], now: Date): T[] {
  return tokens.filter((t) => t.expiresAt.getTime() <= now.getTime());
}
