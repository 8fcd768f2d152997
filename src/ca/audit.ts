// The CA service's append-only audit log: one JSON line per decision, allowed or denied, never key material.
import { closeSync, fsyncSync, writeSync } from 'node:fs';
import type { Clock } from '../util/clock.js';
import { openPrivateFile } from '../util/files.js';

export interface AuditEntry {
  decision: 'allow' | 'deny';
  op: string;
  requester: string;
  cluster?: string;
  signer?: string;
  subject?: string;
  serial?: string;
  sha256?: string;
  authority?: string;
  generation?: number;
  reason?: string;
}

export class AuditLog {
  private fd: number | undefined;
  private pending: string[] = [];
  private timer: NodeJS.Immediate | undefined;

  constructor(
    readonly path: string,
    private readonly clock: Clock,
  ) {
    this.fd = openPrivateFile(path);
  }

  /**
   * Lines are gathered for one turn of the event loop and written together: at thousands of
   * signatures per second a write per line costs more than the signing. `flush()` forces them out.
   */
  record(entry: AuditEntry): void {
    this.pending.push(JSON.stringify({ time: this.clock.now().toISOString(), ...entry }) + '\n');
    if (!this.timer) this.timer = setImmediate(() => this.flush());
  }

  flush(): void {
    if (this.timer) {
      clearImmediate(this.timer);
      this.timer = undefined;
    }
    if (this.fd === undefined || this.pending.length === 0) return;
    const chunk = this.pending.join('');
    this.pending = [];
    writeSync(this.fd, chunk);
  }

  close(): void {
    this.flush();
    if (this.fd !== undefined) {
      fsyncSync(this.fd);
      closeSync(this.fd);
      this.fd = undefined;
    }
  }
}
