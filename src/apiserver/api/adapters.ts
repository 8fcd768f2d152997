// Each served resource bound to its registry: the verbs the router calls, whatever the resource.
import type { Store } from '../../store/client.js';
import { claimBootstrapToken, releaseBootstrapToken } from '../auth/bootstrap-tokens.js';
import type { Authenticated } from '../auth/authenticate.js';
import { clusterTrustBundleRefusal, csrCreateRefusal, nodeNameOf } from '../auth/authorize.js';
import type { ClusterTrustBundle, ClusterTrustBundleRegistry } from '../registry/cluster-trust-bundle.js';
import type { CsrRegistry, CertificateSigningRequest } from '../registry/csr.js';
import type { LeaseRegistry, Lease } from '../registry/lease.js';
import { restrictedLabelChanges, type NodeRegistry, type Node } from '../registry/node.js';
import type { Registries } from '../registry/registries.js';
import type { FieldManager } from '../registry/managed-fields.js';
import type { ListResult, ObjectEvent, ObjectWatch, Preconditions, ResourceInfo } from '../registry/object-store.js';
import { forbiddenError, methodNotAllowedError } from '../status.js';
import type { KubeObject } from '../types.js';
import { findResource, type ResourceDef } from './resources.js';

export interface Ctx {
  auth: Authenticated;
  dryRun: boolean;
  /** Who writes, for metadata.managedFields. */
  manager?: FieldManager;
}

/** The registry's write options for a request. */
const writeOf = (ctx: Ctx) => ({ dryRun: ctx.dryRun, ...(ctx.manager ? { manager: ctx.manager } : {}) });

export interface Adapter {
  def: ResourceDef;
  info: ResourceInfo;
  get(name: string): Promise<KubeObject>;
  /** The objects now, or at `revision` (410 Expired once compacted). */
  list(revision?: bigint): Promise<ListResult<KubeObject>>;
  watch(after: bigint | undefined, onEvent: (ev: ObjectEvent<KubeObject>) => void): Promise<ObjectWatch>;
  create(obj: KubeObject, ctx: Ctx): Promise<KubeObject>;
  /** `sub` is '' for the main resource, else the subresource's name. */
  update(obj: KubeObject, sub: string, ctx: Ctx): Promise<KubeObject>;
  delete(name: string, pre: Preconditions, ctx: Ctx): Promise<KubeObject>;
  /** Fields a fieldSelector may name. */
  fields: string[];
  fieldOf(obj: KubeObject, field: string): string | undefined;
}

const metaField = (obj: KubeObject, field: string) =>
  field === 'metadata.name' ? obj.metadata.name : field === 'metadata.namespace' ? (obj.metadata.namespace ?? '') : undefined;

function csrAdapter(store: Store, reg: CsrRegistry): Adapter {
  return {
    def: findResource('certificates.k8s.io', 'v1', 'certificatesigningrequests')!,
    info: reg.objects.info,
    get: (n) => reg.get(n),
    list: (rev) => (rev === undefined ? reg.list() : reg.objects.list(rev)),
    watch: (a, cb) => reg.watch(a, cb as (ev: ObjectEvent<CertificateSigningRequest>) => void),
    async create(obj, ctx) {
      const { user, token } = ctx.auth;
      let claimed: string | undefined;
      try {
        return await reg.create(obj as CertificateSigningRequest, user, {
          ...writeOf(ctx),
          admit: async (csr, request) => {
            const refusal = csrCreateRefusal(user, csr, request);
            const attrs = { verb: 'create', group: 'certificates.k8s.io', resource: 'certificatesigningrequests' };
            if (refusal) throw forbiddenError(user.name, attrs, refusal);
            // A single-use token is spent by its first CSR; reads with it still work until it expires.
            if (token?.nodeName && !ctx.dryRun && claimed === undefined) {
              if (!(await claimBootstrapToken(store, token.id, csr.metadata.name))) {
                throw forbiddenError(user.name, attrs, `single-use bootstrap token ${token.id} has already been used`);
              }
              claimed = csr.metadata.name;
            }
          },
        });
      } catch (e) {
        if (claimed !== undefined && token) await releaseBootstrapToken(store, token.id, claimed).catch(() => {});
        throw e;
      }
    },
    update(obj, sub, ctx) {
      const o = writeOf(ctx);
      const csr = obj as CertificateSigningRequest;
      if (sub === 'approval') return reg.updateApproval(csr, o);
      if (sub === 'status') return reg.updateStatus(csr, o);
      return reg.update(csr, o);
    },
    delete: (n, pre, ctx) => reg.delete(n, pre, writeOf(ctx)),
    fields: ['metadata.name', 'spec.signerName'],
    fieldOf: (obj, f) => (f === 'spec.signerName' ? (obj as CertificateSigningRequest).spec?.signerName : metaField(obj, f)),
  };
}

/** A node may not give itself roles: restricted labels are set by administrators only. */
function nodeSelfLabels(ctx: Ctx, verb: string) {
  const node = nodeNameOf(ctx.auth.user);
  if (node === undefined) return undefined;
  return (next: Node, cur: Node | undefined) => {
    const changed = restrictedLabelChanges(cur?.metadata.labels, next.metadata.labels);
    if (changed.length) {
      throw forbiddenError(ctx.auth.user.name, { verb, group: '', resource: 'nodes', name: next.metadata.name }, `nodes may not set or change the labels ${changed.join(', ')}`);
    }
  };
}

function nodeAdapter(reg: NodeRegistry): Adapter {
  return {
    def: findResource('', 'v1', 'nodes')!,
    info: reg.objects.info,
    get: (n) => reg.get(n),
    list: (rev) => (rev === undefined ? reg.list() : reg.objects.list(rev)),
    watch: (a, cb) => reg.watch(a, cb as (ev: ObjectEvent<Node>) => void),
    create: (obj, ctx) => reg.create(obj as Node, { ...writeOf(ctx), admit: nodeSelfLabels(ctx, 'create') }),
    update: (obj, sub, ctx) =>
      sub === 'status' ? reg.updateStatus(obj as Node, writeOf(ctx)) : reg.update(obj as Node, { ...writeOf(ctx), admit: nodeSelfLabels(ctx, 'update') }),
    delete: (n, pre, ctx) => reg.delete(n, pre, writeOf(ctx)),
    fields: ['metadata.name', 'spec.unschedulable'],
    fieldOf: (obj, f) => (f === 'spec.unschedulable' ? String(!!(obj as Node).spec?.unschedulable) : metaField(obj, f)),
  };
}

function leaseAdapter(reg: LeaseRegistry): Adapter {
  return {
    def: findResource('coordination.k8s.io', 'v1', 'leases')!,
    info: reg.objects.info,
    get: (n) => reg.get(n),
    list: (rev) => (rev === undefined ? reg.list() : reg.objects.list(rev)),
    watch: (a, cb) => reg.watch(a, cb as (ev: ObjectEvent<Lease>) => void),
    create: (obj, ctx) => reg.create(obj as Lease, writeOf(ctx)),
    update: (obj, sub, ctx) => {
      if (sub) throw methodNotAllowedError('PUT');
      return reg.update(obj as Lease, writeOf(ctx));
    },
    delete: (n, pre, ctx) => reg.delete(n, pre, writeOf(ctx)),
    fields: ['metadata.name', 'metadata.namespace'],
    fieldOf: metaField,
  };
}

/** The attest admission on every write of a ClusterTrustBundle (authorize has already let only administrators write). */
function attested(ctx: Ctx, verb: string) {
  return (next: ClusterTrustBundle, cur: ClusterTrustBundle | undefined) => {
    const refusal = clusterTrustBundleRefusal(ctx.auth.user, next, cur);
    if (refusal) throw forbiddenError(ctx.auth.user.name, { verb, group: 'certificates.k8s.io', resource: 'clustertrustbundles', name: next.metadata.name }, refusal);
  };
}

function clusterTrustBundleAdapter(reg: ClusterTrustBundleRegistry): Adapter {
  return {
    def: findResource('certificates.k8s.io', 'v1beta1', 'clustertrustbundles')!,
    info: reg.objects.info,
    get: (n) => reg.get(n),
    list: (rev) => (rev === undefined ? reg.list() : reg.objects.list(rev)),
    watch: (a, cb) => reg.watch(a, cb as (ev: ObjectEvent<ClusterTrustBundle>) => void),
    create: (obj, ctx) => reg.create(obj as ClusterTrustBundle, { ...writeOf(ctx), admit: attested(ctx, 'create') }),
    update: (obj, sub, ctx) => {
      if (sub) throw methodNotAllowedError('PUT');
      return reg.update(obj as ClusterTrustBundle, { ...writeOf(ctx), admit: attested(ctx, 'update') });
    },
    delete: (n, pre, ctx) => reg.delete(n, pre, writeOf(ctx)),
    fields: ['metadata.name', 'spec.signerName'],
    fieldOf: (obj, f) => (f === 'spec.signerName' ? ((obj as ClusterTrustBundle).spec?.signerName ?? '') : metaField(obj, f)),
  };
}

export function adapters(store: Store, r: Registries): Adapter[] {
  return [csrAdapter(store, r.csrs), nodeAdapter(r.nodes), leaseAdapter(r.leases), clusterTrustBundleAdapter(r.trustBundles)];
}
