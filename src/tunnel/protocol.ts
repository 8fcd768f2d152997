// The tunnel's wire contract, shared by server and agent: ALPN name, HTTP/2 settings, the welcome ping and refusal codes.
import http2 from 'node:http2';

/**
 * Negotiated on the agent-dialled TLS connection. What runs inside is HTTP/2 with the roles reversed: the agent (the TLS
 * client) is the HTTP/2 server, the tunnel server (the TLS server) is the HTTP/2 client that opens streams.
 */
export const ALPN = 'trustplane-tunnel/1';

/** Receive window of each stream: what one stalled stream can hold buffered on the receiving side. */
export const STREAM_WINDOW = 256 * 1024;

/** Streams the agent accepts at once on one connection (its SETTINGS_MAX_CONCURRENT_STREAMS). */
export const MAX_STREAMS = 1024;

/**
 * Receive window of the whole connection: every stream's window at once, so that stalled streams, however many, can
 * never starve the others of connection-level credit.
 */
export const CONNECTION_WINDOW = STREAM_WINDOW * MAX_STREAMS;

/** Node's per-session memory cap (MB) counts buffered frames; it must cover the windows above with room to spare. */
export const MAX_SESSION_MEMORY_MB = 2 * (CONNECTION_WINDOW / (1024 * 1024)) + 16;

export const SETTINGS: http2.Settings = {
  enablePush: false,
  initialWindowSize: STREAM_WINDOW,
  maxConcurrentStreams: MAX_STREAMS,
  // The tunnel's only header block is a CONNECT request; a small table saves memory per agent.
  headerTableSize: 1024,
  maxHeaderListSize: 16 * 1024,
};

/** Sent by the server as its first PING once it has accepted the agent's identity: the agent counts as connected from then. */
export const WELCOME = Buffer.from('tp-welc1');

/** The :authority of the CONNECT requests that open streams (the agent routes every stream to its one endpoint). */
export const STREAM_AUTHORITY = 'node-endpoint:443';

/** GOAWAY codes the server uses when it turns an agent away or drops it; the opaque data carries the reason as text. */
export const GOAWAY = {
  /** Identity refused (not a node, revoked, wrong protocol). */
  refused: http2.constants.NGHTTP2_REFUSED_STREAM,
  /** Another connection of the same node replaced this one. */
  replaced: http2.constants.NGHTTP2_NO_ERROR,
  /** An operator (or the client CA changing) disconnected the node, or the server is closing. */
  dropped: http2.constants.NGHTTP2_CANCEL,
} as const;

export interface Keepalive {
  /** A PING is sent after this long without one. */
  intervalMs: number;
  /** The connection is dropped when a PING is not answered within this. */
  timeoutMs: number;
}

export const DEFAULT_KEEPALIVE: Keepalive = { intervalMs: 20_000, timeoutMs: 10_000 };

/** Pings a session on an interval and calls `onDead` when an answer does not come in time; returns a stopper. */
export function keepSessionAlive(session: http2.Http2Session, k: Keepalive, onDead: (why: string) => void): () => void {
  let deadline: NodeJS.Timeout | undefined;
  const timer = setInterval(() => {
    if (deadline || session.destroyed) return;
    deadline = setTimeout(() => onDead(`no PING answer within ${k.timeoutMs} ms`), k.timeoutMs);
    deadline.unref();
    const answered = (err: Error | null) => {
      clearTimeout(deadline);
      deadline = undefined;
      if (err && !session.destroyed) onDead(`PING failed: ${err.message}`);
    };
    try {
      session.ping(answered);
    } catch (e) {
      answered(e as Error);
    }
  }, k.intervalMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    clearTimeout(deadline);
  };
}

/** Node-style subject fields are a string or, when repeated, an array. */
export function values(v: string | string[] | undefined): string[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}
