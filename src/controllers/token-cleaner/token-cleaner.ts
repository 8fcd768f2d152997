// The bootstrap token cleaner loop: every interval, delete the tokens that have expired.
import { BOOTSTRAP_TOKEN_PREFIX, listBootstrapTokens } from '../../apiserver/index.js';
import type { Store } from '../../store/client.js';
import type { Clock } from '../../util/clock.js';
import type { Logger } from '../../util/log.js';
import { runPeriodically, type Periodic } from '../loop/periodic.js';
import { expiredTokens } from './expiry.js';

export interface TokenCleanerDeps {
  store: Store;
  clock: Clock;
  log: Logger;
  intervalMs: number;
}

export class BootstrapTokenCleaner {
  private loop?: Periodic;

  constructor(private readonly d: TokenCleanerDeps) {}

  start(): void {
    this.loop = runPeriodically('bootstrap-token-cleaner', this.d.intervalMs, () => this.pass().then(() => undefined), this.d.log);
  }

  /** One pass; returns the ids deleted. */
  async pass(): Promise<string[]> {
    const now = this.d.clock.now();
    const deleted: string[] = [];
    for (const t of expiredTokens(await listBootstrapTokens(this.d.store), now)) {
      // Only the record that was judged expired: a token written under the same id since then stays.
      const r = await this.d.store.deleteIfModRevision(`${BOOTSTRAP_TOKEN_PREFIX}${t.id}`, t.modRevision);
      if (!r.ok) continue;
      deleted.push(t.id);
      this.d.log.info({ token: t.id, pool: t.pool, expiresAt: t.expiresAt.toISOString(), ...(t.nodeName ? { node: t.nodeName } : {}) }, 'deleted expired bootstrap token');
    }
    return deleted;
  }

  kick(): void {
    this.loop?.kick();
  }

  async stop(): Promise<void> {
    await this.loop?.stop();
  }
}
