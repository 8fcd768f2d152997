// Shared by the controller tests: CSRs made with real keys, the users that create them, and a real CA service for one cluster.
import type { CertificateSigningRequest, UserInfo } from '../../src/apiserver/index.js';
import type { CaClient } from '../../src/ca/client.js';
import type { CsrSigningBackend } from '../../src/controllers/index.js';
import { buildCsr, generateKeyPair, pemEncode, type SubjectAltNames } from '../../src/pki/index.js';
import { startTestCa, type TestCa } from '../ca/helpers.js';

export const KUBELET_CLIENT = 'kubernetes.io/kube-apiserver-client-kubelet';
export const KUBELET_SERVING = 'kubernetes.io/kubelet-serving';
export const APISERVER_CLIENT = 'kubernetes.io/kube-apiserver-client';
export const CLIENT_USAGES = ['digital signature', 'client auth'];
export const SERVING_USAGES = ['digital signature', 'server auth'];

export const ADMIN: UserInfo = { name: 'admin', groups: ['system:masters', 'system:authenticated'] };

export function bootstrapUser(id: string, o: { pool?: string; boundTo?: string; createdAt?: string } = {}): UserInfo {
  const extra = {
    ...(o.boundTo ? { 'trustplane.io/bound-node-name': [o.boundTo] } : {}),
    ...(o.createdAt ? { 'trustplane.io/token-created-at': [o.createdAt] } : {}),
  };
  return {
    name: `system:bootstrap:${id}`,
    groups: ['system:bootstrappers', `system:bootstrappers:${o.pool ?? 'default'}`, 'system:authenticated'],
    ...(Object.keys(extra).length ? { extra } : {}),
  };
}

export function nodeUser(node: string): UserInfo {
  return { name: `system:node:${node}`, groups: ['system:nodes', 'system:authenticated'] };
}

/** A PEM CSR signed by a fresh P-256 key; "system:node:<n>" in system:nodes unless another subject is given. */
export async function nodeCsr(node: string, o: { sans?: Partial<SubjectAltNames>; subject?: Array<{ type: string; value: string }> } = {}) {
  const kp = await generateKeyPair({ kind: 'ec', curve: 'P-256' });
  const subject = o.subject ?? [
    { type: 'O', value: 'system:nodes' },
    { type: 'CN', value: `system:node:${node}` },
  ];
  const pem = pemEncode('CERTIFICATE REQUEST', await buildCsr({ subject, sans: o.sans, signer: kp.signer }));
  return { pem, key: kp.privateKeyPem };
}

export function csrManifest(name: string, pem: string, o: { signerName?: string; usages?: string[]; expirationSeconds?: number } = {}): CertificateSigningRequest {
  return {
    apiVersion: 'certificates.k8s.io/v1',
    kind: 'CertificateSigningRequest',
    metadata: { name },
    spec: {
      request: Buffer.from(pem).toString('base64'),
      signerName: o.signerName ?? KUBELET_CLIENT,
      usages: o.usages ?? (o.signerName === KUBELET_SERVING ? SERVING_USAGES : CLIENT_USAGES),
      ...(o.expirationSeconds ? { expirationSeconds: o.expirationSeconds } : {}),
    },
  };
}

export interface SigningCa {
  ca: TestCa;
  cluster: string;
  caller: CaClient;
  /** What the host hands the controllers: the CA service bound to this cluster. */
  backend: CsrSigningBackend;
  /** The cluster root CA bundle (PEM). */
  bundle(): Promise<string>;
  stop(): Promise<void>;
}

/** The real CA service in-process, with one cluster and a caller bound to it. */
export async function startSigningCa(cluster = 'c1', o: { lifetimes?: Record<string, number> } = {}): Promise<SigningCa> {
  const ca = await startTestCa();
  try {
    await ca.fleet.createCluster({ name: cluster, ...(o.lifetimes ? { lifetimes: o.lifetimes } : {}) });
    const caller = await ca.clusterCaller(cluster);
    return {
      ca,
      cluster,
      caller,
      backend: { sign: (input) => caller.sign(cluster, { ...input, csr: typeof input.csr === 'string' ? input.csr : input.csr.toString('utf8') }) },
      bundle: async () => (await ca.fleet.describeCluster(cluster)).authorities.find((a) => a.kind === 'root')!.bundle,
      stop: () => ca.stop(),
    };
  } catch (e) {
    await ca.stop();
    throw e;
  }
}
