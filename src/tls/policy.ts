// The one TLS policy for every trustplane server and client: TLS 1.3 by default, 1.2 at the least, AEAD suites only.
import type { SecureContextOptions, SecureVersion } from 'node:tls';
import { invalid } from '../util/errors.js';

/** TLS 1.2 suites: forward-secret AEAD only. TLS 1.3 suites are all AEAD and stay at OpenSSL's default. */
export const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

export const TLS13_CIPHERS = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'].join(':');

export type MinVersion = 'TLSv1.2' | 'TLSv1.3';

/** Parse a user's `--tls-min-version` value; anything below 1.2 is refused. */
export function parseMinVersion(value: string | undefined): MinVersion {
  if (value === undefined || value === '') return 'TLSv1.2';
  const v = value.trim().toLowerCase().replace(/^tlsv?/, '');
  if (v === '1.2') return 'TLSv1.2';
  if (v === '1.3') return 'TLSv1.3';
  throw invalid(`TLS minimum version "${value}" is not allowed`, 'use 1.2 or 1.3; versions below TLS 1.2 are refused');
}

export interface PeerMaterial {
  /** PEM certificate chain this side presents (leaf first). */
  cert: string | Buffer;
  /** PEM private key for `cert`. */
  key: string | Buffer;
  /** PEM trust anchors used to verify the peer. */
  ca: string | Buffer | Array<string | Buffer>;
  minVersion?: MinVersion;
}

function base(m: PeerMaterial): SecureContextOptions & { minVersion: SecureVersion; maxVersion: SecureVersion } {
  return {
    cert: m.cert,
    key: m.key,
    ca: m.ca,
    minVersion: m.minVersion ?? 'TLSv1.2',
    maxVersion: 'TLSv1.3',
    ciphers: `${TLS13_CIPHERS}:${TLS12_CIPHERS}`,
    honorCipherOrder: true,
    ecdhCurve: 'X25519:P-256:P-384',
  };
}

export interface ServerPolicy extends PeerMaterial {
  /**
   * 'require': the handshake fails without a client certificate from `ca`.
   * 'request': a certificate is asked for but not required, so bearer tokens work on the same port;
   *            the handler must then check `socket.authorized` itself.
   */
  clientCert: 'require' | 'request' | 'none';
}

/** Options for tls.createServer / https.createServer / http2.createSecureServer. */
export function serverOptions(p: ServerPolicy) {
  return {
    ...base(p),
    requestCert: p.clientCert !== 'none',
    rejectUnauthorized: p.clientCert === 'require',
    // Session tickets off: every connection authenticates its client certificate afresh,
    // so a revoked or rotated client certificate cannot ride on a resumed session.
    sessionTimeout: 0,
    ticketKeys: undefined,
  };
}

/** Options for tls.connect / https.request / http2.connect. */
export function clientOptions(p: PeerMaterial & { servername?: string }) {
  return {
    ...base(p),
    rejectUnauthorized: true,
    servername: p.servername,
  };
}
