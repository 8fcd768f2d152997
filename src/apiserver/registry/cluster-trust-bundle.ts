// certificates.k8s.io/v1beta1 ClusterTrustBundles over the store: validation as kube-apiserver's, and the publishing of each signer's bundle.
import { createHash } from 'node:crypto';
import { parseCertificate, pemDecodeAll } from '../../pki/index.js';
import type { Store } from '../../store/client.js';
import { systemClock, type Clock } from '../../util/clock.js';
import { invalidError } from '../status.js';
import type { KubeObject, ObjectMeta, StatusCause } from '../types.js';
import { mergeMetadata, signerNameProblem } from './csr.js';
import { isDnsSubdomain, metadataCauses } from './meta.js';
import { preconditionsOf } from './node.js';
import { ObjectStore, type ListResult, type ObjectEvent, type ObjectWatch, type Preconditions, type ResourceInfo, type WriteOptions } from './object-store.js';

export const CLUSTER_TRUST_BUNDLE_RESOURCE: ResourceInfo = {
  group: 'certificates.k8s.io',
  resource: 'clustertrustbundles',
  kind: 'ClusterTrustBundle',
  apiVersion: 'certificates.k8s.io/v1beta1',
  prefix: '/registry/clustertrustbundles/',
  alwaysPresent: ['spec'],
};

/** The collection's path: node agents list it with `fieldSelector=spec.signerName=<signer>`. */
export const CLUSTER_TRUST_BUNDLES_PATH = '/apis/certificates.k8s.io/v1beta1/clustertrustbundles';

/** kube-apiserver's certificates.MaxTrustBundleSize. */
export const MAX_TRUST_BUNDLE_BYTES = 1024 * 1024;

export interface ClusterTrustBundleSpec {
  /** The signer whose trust anchors these are; empty for a bundle linked to no signer. Immutable. */
  signerName?: string;
  /** PEM CERTIFICATE blocks of CA certificates, no headers, no duplicates, at least one. */
  trustBundle: string;
}

export interface ClusterTrustBundle extends KubeObject {
  apiVersion: 'certificates.k8s.io/v1beta1';
  kind: 'ClusterTrustBundle';
  metadata: ObjectMeta;
  spec: ClusterTrustBundleSpec;
}

/** "example.com/foo" → "example.com:foo:": the prefix every bundle of a signer is named with. */
export const signerBundlePrefix = (signerName: string) => `${signerName.replaceAll('/', ':')}:`;

/**
 * The name a published bundle gets, as kube-controller-manager's ClusterTrustBundle publisher names them: the signer's
 * prefix and the first 12 bytes of the SHA-256 of the PEM, in hex. A new content is a new object, so a reader can tell
 * a change from the name alone.
 */
export function publishedBundleName(signerName: string, pem: string): string {
  return `${signerBundlePrefix(signerName)}${createHash('sha256').update(pem, 'utf8').digest('hex').slice(0, 24)}`;
}

/** As apivalidation.ValidateClusterTrustBundleName: signer-linked bundles carry the signer's prefix, unlinked ones no ":". */
function nameProblem(name: string, signerName: string): string | undefined {
  if (!signerName) {
    if (name.includes(':')) return `Invalid value: "${name}": ClusterTrustBundle without signer name must not have ":" in its name`;
    return isDnsSubdomain(name) ? undefined : `Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`;
  }
  const prefix = signerBundlePrefix(signerName);
  if (!name.startsWith(prefix)) return `Invalid value: "${name}": ClusterTrustBundle for signerName ${signerName} must be named with prefix ${prefix}`;
  const suffix = name.slice(prefix.length);
  return isDnsSubdomain(suffix) ? undefined : `Invalid value: "${name}": the part after ${prefix} must be a lowercase RFC 1123 subdomain`;
}

/** As kube-apiserver's validateTrustBundle: CA certificates only, each once, at least one. */
export function trustBundleProblems(pem: unknown): string[] {
  if (typeof pem !== 'string' || pem === '') return ['Invalid value: "<value omitted>": at least one trust anchor must be provided'];
  if (Buffer.byteLength(pem) > MAX_TRUST_BUNDLE_BYTES) return [`Too long: may not be more than ${MAX_TRUST_BUNDLE_BYTES} bytes`];
  let ders: Buffer[];
  try {
    ders = pemDecodeAll(pem, 'CERTIFICATE');
  } catch (e) {
    return [`Invalid value: "<value omitted>": ${(e as Error).message}`];
  }
  const problems: string[] = [];
  const seen = new Map<string, number>();
  ders.forEach((der, i) => {
    try {
      if (!parseCertificate(der).isCA) problems.push(`Invalid value: "<value omitted>": entry ${i} does not have the CA bit set`);
    } catch {
      problems.push(`Invalid value: "<value omitted>": entry ${i} does not parse as X.509`);
      return;
    }
    const k = der.toString('base64');
    const first = seen.get(k);
    if (first !== undefined) problems.push(`Invalid value: "<value omitted>": duplicate trust anchor (indices [${first} ${i}])`);
    else seen.set(k, i);
  });
  return problems;
}

function bundleCauses(b: ClusterTrustBundle, checkPem = true): StatusCause[] {
  const meta = b.metadata ?? { name: '' };
  const spec = b.spec;
  if (!spec || typeof spec !== 'object') return [{ field: 'spec', reason: 'FieldValueRequired', message: 'Required value' }];
  const signer = typeof spec.signerName === 'string' ? spec.signerName : '';
  if (spec.signerName !== undefined && spec.signerName !== null && typeof spec.signerName !== 'string') {
    return [{ field: 'spec.signerName', message: 'Invalid value: must be a string' }];
  }
  // Labels and annotations by the shared rules; the name by this resource's own (it may contain ":").
  const causes = metadataCauses({ ...meta, name: 'x' });
  const name = meta.name;
  if (typeof name !== 'string' || name === '') causes.unshift({ field: 'metadata.name', reason: 'FieldValueRequired', message: 'Required value: name or generateName is required' });
  else {
    const p = nameProblem(name, signer);
    if (p) causes.unshift({ field: 'metadata.name', message: p });
  }
  if (signer) {
    const p = signerNameProblem(signer);
    if (p) causes.push({ field: 'spec.signerName', message: p });
  }
  if (checkPem) for (const p of trustBundleProblems(spec.trustBundle)) causes.push({ field: 'spec.trustBundle', message: p });
  return causes;
}

export interface ClusterTrustBundleWriteOptions extends WriteOptions {
  /** Sees the object about to be written (and the current one on update); throws to refuse (the attest check). */
  admit?: (next: ClusterTrustBundle, current: ClusterTrustBundle | undefined) => void;
}

/** What one publish did, for logs. */
export interface PublishResult {
  name: string;
  changed: boolean;
  deleted: string[];
}

export class ClusterTrustBundleRegistry {
  readonly objects: ObjectStore<ClusterTrustBundle>;

  constructor(store: Store, clock: Clock = systemClock) {
    this.objects = new ObjectStore(store, CLUSTER_TRUST_BUNDLE_RESOURCE, clock);
  }

  get(name: string): Promise<ClusterTrustBundle> {
    return this.objects.get(name);
  }

  list(): Promise<ListResult<ClusterTrustBundle>> {
    return this.objects.list();
  }

  watch(after: bigint | undefined, onEvent: (ev: ObjectEvent<ClusterTrustBundle>) => void): Promise<ObjectWatch> {
    return this.objects.watch(after, onEvent);
  }

  create(input: ClusterTrustBundle, o: ClusterTrustBundleWriteOptions = {}): Promise<ClusterTrustBundle> {
    const b = structuredClone(input);
    b.metadata ??= { name: '' };
    const name = b.metadata.name || (b.metadata.generateName ? `${b.metadata.generateName}x` : '');
    const causes = bundleCauses({ ...b, metadata: { ...b.metadata, name } });
    if (causes.length) throw invalidError(CLUSTER_TRUST_BUNDLE_RESOURCE, b.metadata.name ?? '', causes);
    return this.objects.create(b, o, (final) => o.admit?.(final, undefined));
  }

  /** Metadata and spec; spec.signerName may not change, and the PEM is judged again only when it changes (as kube-apiserver). */
  update(input: ClusterTrustBundle, o: ClusterTrustBundleWriteOptions = {}): Promise<ClusterTrustBundle> {
    return this.objects.update(
      input.metadata.name,
      (cur) => {
        const next: ClusterTrustBundle = { ...cur, metadata: mergeMetadata(cur.metadata, input.metadata), spec: input.spec };
        const causes = bundleCauses(next, next.spec?.trustBundle !== cur.spec.trustBundle);
        if ((next.spec?.signerName ?? '') !== (cur.spec.signerName ?? '')) {
          causes.push({ field: 'spec.signerName', message: `Invalid value: ${JSON.stringify(next.spec?.signerName ?? '')}: field is immutable` });
        }
        if (causes.length) throw invalidError(CLUSTER_TRUST_BUNDLE_RESOURCE, cur.metadata.name, causes);
        o.admit?.(next, cur);
        return next;
      },
      preconditionsOf(input),
      o,
    );
  }

  delete(name: string, pre: Preconditions = {}, o: WriteOptions = {}): Promise<ClusterTrustBundle> {
    return this.objects.delete(name, pre, o);
  }

  /** The bundles linked to `signerName`. */
  async forSigner(signerName: string): Promise<ClusterTrustBundle[]> {
    return (await this.list()).items.filter((b) => b.spec.signerName === signerName);
  }

  /**
   * Makes `pem` the one published bundle of `signerName` (the control plane's write, not a user's: no admission): the
   * object named for its content is created, or put back if someone changed it, before every other bundle of the signer
   * is deleted, so that a reader always finds the signer's current anchors. Idempotent.
   */
  async publish(signerName: string, pem: string): Promise<PublishResult> {
    const name = publishedBundleName(signerName, pem);
    let changed = false;
    const cur = await this.objects.tryGet(name);
    if (!cur) {
      try {
        await this.create({ apiVersion: 'certificates.k8s.io/v1beta1', kind: 'ClusterTrustBundle', metadata: { name }, spec: { signerName, trustBundle: pem } });
        changed = true;
      } catch (e) {
        if ((e as { reason?: string }).reason !== 'AlreadyExists') throw e;
      }
    } else if (cur.spec.trustBundle !== pem) {
      await this.objects.update(name, (b) => ({ ...b, spec: { signerName, trustBundle: pem } }));
      changed = true;
    }
    const deleted: string[] = [];
    for (const b of await this.forSigner(signerName)) {
      if (b.metadata.name === name) continue;
      try {
        await this.objects.delete(b.metadata.name);
        deleted.push(b.metadata.name);
      } catch (e) {
        if ((e as { reason?: string }).reason !== 'NotFound') throw e;
      }
    }
    return { name, changed, deleted };
  }
}
