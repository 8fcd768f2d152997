// Keeps one lease alive in the background: a renewal every third of its TTL, over whichever endpoint answers.
import type { IDuplexStream, ILeaseKeepAliveRequest, ILeaseKeepAliveResponse } from 'etcd3';
import { TrustplaneError } from '../util/errors.js';
import { endStream, type Endpoint, type EndpointPool } from './endpoints.js';
import { describeFailure } from './errors.js';
import type { LeaseId } from './types.js';

export interface LeaseKeeper {
  readonly id: LeaseId;
  /** Stop renewing (the lease then expires after its TTL unless revoked). */
  stop(): void;
  /**
   * Resolves when renewal ends: null after stop(), or why the lease is lost — NotFound when the store no longer knows
   * it (expired or revoked), Unavailable when no endpoint renewed it before its TTL ran out.
   */
  readonly lost: Promise<TrustplaneError | null>;
  /** The TTL the store reported at the last renewal, in seconds. */
  ttl(): number;
}

type Stream = IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>;

export function keepLeaseAlive(pool: EndpointPool, id: LeaseId, ttlSeconds: number, onLost?: (e: TrustplaneError) => void): LeaseKeeper {
  let ttl = ttlSeconds;
  let lastRenewed = Date.now();
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let stream: Stream | undefined;
  let streamEp: Endpoint | undefined;
  let waiting: { resolve(r: ILeaseKeepAliveResponse): void; reject(e: unknown): void } | undefined;
  let resolveLost!: (e: TrustplaneError | null) => void;
  const lost = new Promise<TrustplaneError | null>((r) => (resolveLost = r));

  const finish = (e: TrustplaneError | null) => {
    if (stopped) return;
    stopped = true;
    clearTimeout(timer);
    if (stream) endStream(stream);
    stream = undefined;
    resolveLost(e);
    if (e) onLost?.(e);
  };

  const openStream = async (): Promise<Stream> => {
    if (stream) return stream;
    const ep = pool.pick();
    const s = await ep.etcd.leaseClient.leaseKeepAlive();
    s.on('data', (r: ILeaseKeepAliveResponse) => {
      const w = waiting;
      waiting = undefined;
      w?.resolve(r);
    });
    const broke = (e: unknown) => {
      if (stream !== s) return;
      stream = undefined;
      pool.markDown(ep, describeFailure(e).details);
      const w = waiting;
      waiting = undefined;
      w?.reject(e);
    };
    s.on('error', broke);
    s.on('end', () => broke(new Error('14 UNAVAILABLE: keepalive stream ended by the server')));
    stream = s;
    streamEp = ep;
    return s;
  };

  const renewOnce = async (): Promise<ILeaseKeepAliveResponse> => {
    const s = await openStream();
    const ep = streamEp!;
    return new Promise<ILeaseKeepAliveResponse>((resolve, reject) => {
      const t = setTimeout(() => {
        waiting = undefined;
        if (stream === s) {
          stream = undefined;
          endStream(s);
        }
        pool.markDown(ep, 'keepalive not answered in time');
        reject(new Error(`4 DEADLINE_EXCEEDED: keepalive not answered by ${ep.url}`));
      }, Math.min(pool.timeoutMs, Math.max(1000, (ttl * 1000) / 3)));
      waiting = {
        resolve: (r) => (clearTimeout(t), resolve(r)),
        reject: (e) => (clearTimeout(t), reject(e)),
      };
      s.write({ ID: id });
    });
  };

  const schedule = (ms: number) => {
    if (stopped) return;
    timer = setTimeout(tick, ms);
  };

  const tick = async () => {
    if (stopped) return;
    try {
      const r = await renewOnce();
      if (stopped) return;
      if (Number(r.TTL) <= 0) {
        finish(new TrustplaneError('NotFound', `store lease ${id} has expired or was revoked (${streamEp?.url})`, 'grant a new lease and attach the keys again'));
        return;
      }
      ttl = Number(r.TTL);
      lastRenewed = Date.now();
      if (streamEp) pool.markUp(streamEp);
      schedule(Math.max(500, (ttl * 1000) / 3));
    } catch (e) {
      if (stopped) return;
      const f = describeFailure(e);
      if (Date.now() - lastRenewed >= ttl * 1000) {
        finish(new TrustplaneError('Unavailable', `store lease ${id} could not be renewed within its ${ttl} s TTL: ${f.details}`, 'check that the store is reachable; the keys attached to the lease are gone'));
        return;
      }
      schedule(200);
    }
  };

  schedule(0);
  return { id, stop: () => finish(null), lost, ttl: () => ttl };
}
