// A byte pipe that shows every chunk to an observer on its way through, keeping the inner stream's backpressure.
import { Duplex } from 'node:stream';

export type TapDirection = 'to-node' | 'from-node';

/**
 * Wraps a dialled stream so that `tap` sees what the control plane writes ('to-node') and what the node sends back
 * ('from-node'). Only used when a tap is configured: it costs one extra stream hop per chunk.
 */
export class TappedStream extends Duplex {
  constructor(
    private readonly inner: Duplex,
    private readonly tap: (direction: TapDirection, chunk: Buffer) => void,
  ) {
    super({ allowHalfOpen: true });
    inner.on('data', (chunk: Buffer) => {
      this.observe('from-node', chunk);
      if (!this.push(chunk)) inner.pause();
    });
    inner.on('end', () => this.push(null));
    inner.on('error', (e) => this.destroy(e));
    inner.on('close', () => {
      if (!this.destroyed && !this.readableEnded) this.destroy();
    });
    inner.pause();
  }

  private observe(direction: TapDirection, chunk: Buffer): void {
    try {
      this.tap(direction, chunk);
    } catch {
      // An observer's failure must not break the pipe it observes.
    }
  }

  override _read(): void {
    this.inner.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.observe('to-node', chunk);
    if (this.inner.write(chunk)) cb();
    else this.inner.once('drain', () => cb());
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.inner.end(() => cb());
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    if (!this.inner.destroyed) this.inner.destroy(err ?? undefined);
    cb(err);
  }
}
