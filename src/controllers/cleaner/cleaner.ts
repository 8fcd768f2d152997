// The CSR cleaner loop: every interval, list the CSRs and delete those retentionVerdict says have been kept long enough.
import type { CsrRegistry } from '../../apiserver/index.js';
import type { Clock } from '../../util/clock.js';
import { TrustplaneError } from '../../util/errors.js';
import type { Logger } from '../../util/log.js';
import { runPeriodically, type Periodic } from '../loop/periodic.js';
import { retentionVerdict } from './retention.js';

export interface CleanerDeps {
  csrs: CsrRegistry;
  clock: Clock;
  log: Logger;
  intervalMs: number;
}

export class CsrCleaner {
  private loop?: Periodic;

  constructor(private readonly d: CleanerDeps) {}

  start(): void {
    this.loop = runPeriodically('csr-cleaner', this.d.intervalMs, () => this.pass().then(() => undefined), this.d.log);
  }

  /** One pass; returns the names deleted. */
  async pass(): Promise<string[]> {
    const now = this.d.clock.now();
    const deleted: string[] = [];
    for (const csr of (await this.d.csrs.list()).items) {
      const v = retentionVerdict(csr, now);
      if (!v.delete) continue;
      try {
        // Only the object judged: one changed since the list (or replaced under the same name) waits for the next pass.
        await this.d.csrs.delete(csr.metadata.name, { resourceVersion: csr.metadata.resourceVersion, uid: csr.metadata.uid });
        deleted.push(csr.metadata.name);
        this.d.log.info({ csr: csr.metadata.name, signer: csr.spec?.signerName, requester: csr.spec?.username }, `deleted: ${v.why}`);
      } catch (e) {
        if (!(e instanceof TrustplaneError && (e.reason === 'Conflict' || e.reason === 'NotFound'))) throw e;
      }
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
