// certificates.k8s.io/v1 CertificateSigningRequests over the store: the one code path of the HTTP handlers and the controllers.
import { parseCertificate, parseCsr, pemDecodeAll, type ParsedCsr } from '../../pki/index.js';
import type { Store } from '../../store/client.js';
import { systemClock, type Clock } from '../../util/clock.js';
import { TrustplaneError } from '../../util/errors.js';
import { invalidError } from '../status.js';
import type { KubeObject, ObjectMeta, StatusCause, UserInfo } from '../types.js';
import { isDnsSubdomain, metadataCauses, timestamp } from './meta.js';
import { ObjectStore, type ListResult, type ObjectEvent, type ObjectWatch, type Preconditions, type ResourceInfo, type WriteOptions } from './object-store.js';
import { LruMap } from '../../util/lru.js';

export const CSR_RESOURCE: ResourceInfo = {
  group: 'certificates.k8s.io',
  resource: 'certificatesigningrequests',
  kind: 'CertificateSigningRequest',
  apiVersion: 'certificates.k8s.io/v1',
  prefix: '/registry/certificatesigningrequests/',
  alwaysPresent: ['status'],
  serverSetFields: ['spec.username', 'spec.uid', 'spec.groups', 'spec.extra'],
};

// The signer names live in one module (src/pki/signer-names.ts); re-exported here for the API's users.
export { SIGNER_APISERVER_CLIENT, SIGNER_KUBELET_CLIENT, SIGNER_KUBELET_SERVING } from '../../pki/signer-names.js';

/** The shortest certificate lifetime a CSR may ask for, as Kubernetes. */
export const MIN_EXPIRATION_SECONDS = 600;

export const KEY_USAGES = [
  'signing', 'digital signature', 'content commitment', 'key encipherment', 'key agreement', 'data encipherment',
  'cert sign', 'crl sign', 'encipher only', 'decipher only', 'any', 'server auth', 'client auth', 'code signing',
  'email protection', 's/mime', 'ipsec end system', 'ipsec tunnel', 'ipsec user', 'timestamping', 'ocsp signing',
  'microsoft sgc', 'netscape sgc',
] as const;

export interface CsrCondition {
  type: 'Approved' | 'Denied' | 'Failed' | (string & {});
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
  lastUpdateTime?: string;
  lastTransitionTime?: string;
}

export interface CsrSpec {
  /** base64 of the PEM CERTIFICATE REQUEST. */
  request: string;
  signerName: string;
  expirationSeconds?: number;
  usages?: string[];
  /** Set by the server from the authenticated requester; never taken from the body. */
  username?: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

export interface CsrStatus {
  conditions?: CsrCondition[];
  /** base64 of the PEM certificate chain, once issued. */
  certificate?: string;
}

export interface CertificateSigningRequest extends KubeObject {
  apiVersion: 'certificates.k8s.io/v1';
  kind: 'CertificateSigningRequest';
  metadata: ObjectMeta;
  spec: CsrSpec;
  status?: CsrStatus;
}

const APPROVAL_TYPES = new Set(['Approved', 'Denied']);
const B64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** spec.request as text; throws Invalid on anything but base64 of a PEM CERTIFICATE REQUEST with a valid signature. */
export function csrRequestOf(csr: Pick<CertificateSigningRequest, 'spec'>, parsed?: ParsedRequests): ParsedCsr {
  const causes = requestCauses(csr.spec?.request, parsed);
  if (causes.parsed) return causes.parsed;
  throw new TrustplaneError('Invalid', causes.problems.map((c) => c.message).join('; '));
}

/** Parsed requests remembered this many at a time: enough for every CSR in flight between create and issue. */
const PARSED_REQUESTS = 2048;

/**
 * Parsed, signature-checked requests by their spec.request text. Admission, the approver (on each event) and the signer
 * all need the same parse, and its signature check costs more than the rest of a round trip; the result depends on
 * the bytes alone. Refusals are not kept. The ParsedCsr handed out is shared: read it, do not change it.
 */
export class ParsedRequests {
  private readonly byText = new LruMap<string, ParsedCsr>(PARSED_REQUESTS);

  /** The parse of a request that passed every check before (requestCauses looks here first). */
  get(request: string): ParsedCsr | undefined {
    return this.byText.get(request);
  }

  parse(request: string, text: string): ParsedCsr {
    const p = this.byText.get(request);
    return p ?? this.remember(request, parseCsr(text));
  }

  private remember(request: string, p: ParsedCsr): ParsedCsr {
    this.byText.set(request, p);
    return p;
  }
}

function requestCauses(request: unknown, parsed?: ParsedRequests): { parsed?: ParsedCsr; problems: StatusCause[] } {
  const field = 'spec.request';
  if (typeof request !== 'string' || request === '') return { problems: [{ field, reason: 'FieldValueRequired', message: 'Required value' }] };
  // Remembered only after passing the checks below, which depend on the text alone.
  const known = parsed?.get(request);
  if (known) return { parsed: known, problems: [] };
  if (!B64.test(request) || request.length % 4 !== 0) return { problems: [{ field, message: 'Invalid value: not base64-encoded data' }] };
  const text = Buffer.from(request, 'base64').toString('latin1');
  if (!text.includes('-----BEGIN CERTIFICATE REQUEST-----') && !text.includes('-----BEGIN NEW CERTIFICATE REQUEST-----')) {
    return { problems: [{ field, message: 'Invalid value: PEM block type must be CERTIFICATE REQUEST' }] };
  }
  try {
    return { parsed: parsed ? parsed.parse(request, text) : parseCsr(text), problems: [] };
  } catch (e) {
    return { problems: [{ field, message: `Invalid value: ${(e as Error).message}` }] };
  }
}

/** Why `s` is not a signer name ("example.com/signer-name"), as Kubernetes' ValidateSignerName; undefined when it is one. */
export function signerNameProblem(s: unknown): string | undefined {
  if (typeof s !== 'string' || s === '') return 'Required value';
  const slash = s.indexOf('/');
  if (slash <= 0 || slash === s.length - 1) return `Invalid value: "${s}": must be a fully qualified domain and path of the form 'example.com/signer-name'`;
  if (!isDnsSubdomain(s.slice(0, slash))) return `Invalid value: "${s}": the domain part must be a DNS subdomain`;
  if (s.length > 571 || !/^[A-Za-z0-9][-A-Za-z0-9_./]*$/.test(s.slice(slash + 1))) return `Invalid value: "${s}": the path part is not a valid path`;
  return undefined;
}

function specCauses(spec: CsrSpec | undefined, requests: ParsedRequests): { parsed?: ParsedCsr; causes: StatusCause[] } {
  if (!spec || typeof spec !== 'object') return { causes: [{ field: 'spec', reason: 'FieldValueRequired', message: 'Required value' }] };
  const { parsed, problems } = requestCauses(spec.request, requests);
  const causes = [...problems];
  const sp = signerNameProblem(spec.signerName);
  if (sp) causes.push({ field: 'spec.signerName', message: sp, reason: sp === 'Required value' ? 'FieldValueRequired' : undefined });
  if (spec.expirationSeconds !== undefined && spec.expirationSeconds !== null) {
    const e = spec.expirationSeconds;
    if (!Number.isInteger(e) || e < MIN_EXPIRATION_SECONDS || e > 2 ** 31 - 1) {
      causes.push({ field: 'spec.expirationSeconds', message: `Invalid value: ${e}: may not specify a duration less than ${MIN_EXPIRATION_SECONDS} seconds` });
    }
  }
  if (!Array.isArray(spec.usages) || spec.usages.length === 0) {
    causes.push({ field: 'spec.usages', reason: 'FieldValueRequired', message: 'Required value' });
  } else {
    const seen = new Set<string>();
    for (const [i, u] of spec.usages.entries()) {
      if (!(KEY_USAGES as readonly string[]).includes(u)) {
        causes.push({ field: `spec.usages[${i}]`, reason: 'FieldValueNotSupported', message: `Unsupported value: "${u}"` });
      } else if (seen.has(u)) causes.push({ field: `spec.usages[${i}]`, reason: 'FieldValueDuplicate', message: `Duplicate value: "${u}"` });
      seen.add(u);
    }
  }
  return { parsed, causes };
}

function conditionCauses(conditions: unknown): StatusCause[] {
  if (conditions === undefined || conditions === null) return [];
  if (!Array.isArray(conditions)) return [{ field: 'status.conditions', message: 'Invalid value: must be a list' }];
  const causes: StatusCause[] = [];
  const seen = new Set<string>();
  for (const [i, c] of (conditions as CsrCondition[]).entries()) {
    const f = `status.conditions[${i}]`;
    if (!c || typeof c.type !== 'string' || c.type === '') {
      causes.push({ field: `${f}.type`, reason: 'FieldValueRequired', message: 'Required value' });
      continue;
    }
    if (!['True', 'False', 'Unknown'].includes(c.status)) {
      causes.push({ field: `${f}.status`, reason: 'FieldValueNotSupported', message: `Unsupported value: "${c.status}": supported values: "True", "False", "Unknown"` });
    }
    if ((APPROVAL_TYPES.has(c.type) || c.type === 'Failed') && c.status !== 'True') {
      causes.push({ field: `${f}.status`, reason: 'FieldValueNotSupported', message: `Unsupported value: "${c.status}": supported values: "True"` });
    }
    if (APPROVAL_TYPES.has(c.type) || c.type === 'Failed') {
      if (seen.has(c.type)) causes.push({ field: `${f}.type`, reason: 'FieldValueDuplicate', message: `Duplicate value: "${c.type}"` });
      seen.add(c.type);
    }
  }
  if (seen.has('Approved') && seen.has('Denied')) {
    causes.push({ field: 'status.conditions', message: 'Invalid value: Approved and Denied conditions are mutually exclusive' });
  }
  return causes;
}

const has = (csr: CertificateSigningRequest, type: string) => (csr.status?.conditions ?? []).some((c) => c.type === type && c.status === 'True');

export const isApproved = (csr: CertificateSigningRequest) => has(csr, 'Approved');
export const isDenied = (csr: CertificateSigningRequest) => has(csr, 'Denied');
export const isFailed = (csr: CertificateSigningRequest) => has(csr, 'Failed');
export const isIssued = (csr: CertificateSigningRequest) => !!csr.status?.certificate;

/** "Approved,Issued", "Pending", "Denied"...: the CONDITION column of kubectl get csr. */
export function conditionSummary(csr: CertificateSigningRequest): string {
  const types = (csr.status?.conditions ?? []).map((c) => c.type);
  if (csr.status?.certificate) types.push('Issued');
  return types.length ? types.join(',') : 'Pending';
}

export class CsrRegistry {
  readonly objects: ObjectStore<CertificateSigningRequest>;
  private readonly requests = new ParsedRequests();

  constructor(
    store: Store,
    private readonly clock: Clock = systemClock,
  ) {
    this.objects = new ObjectStore(store, CSR_RESOURCE, clock);
  }

  get(name: string): Promise<CertificateSigningRequest> {
    return this.objects.get(name);
  }

  /** csrRequestOf, parsed once per request text for admission and the controllers alike. */
  requestOf(csr: Pick<CertificateSigningRequest, 'spec'>): ParsedCsr {
    return csrRequestOf(csr, this.requests);
  }

  list(): Promise<ListResult<CertificateSigningRequest>> {
    return this.objects.list();
  }

  watch(after: bigint | undefined, onEvent: (ev: ObjectEvent<CertificateSigningRequest>) => void): Promise<ObjectWatch> {
    return this.objects.watch(after, onEvent);
  }

  /**
   * Creates a CSR for `requester`: spec.username/uid/groups/extra come from the requester, never from the body; status
   * starts empty. `admit` sees the validated object and its parsed request before the write and may refuse it.
   */
  async create(
    input: CertificateSigningRequest,
    requester: UserInfo,
    o: WriteOptions & { admit?: (csr: CertificateSigningRequest, request: ParsedCsr) => Promise<void> | void } = {},
  ): Promise<CertificateSigningRequest> {
    const csr = structuredClone(input);
    const { username: _u, uid: _i, groups: _g, extra: _e, ...spec } = csr.spec ?? ({} as CsrSpec);
    csr.spec = {
      ...spec,
      username: requester.name,
      ...(requester.uid ? { uid: requester.uid } : {}),
      groups: [...requester.groups],
      ...(requester.extra && Object.keys(requester.extra).length ? { extra: structuredClone(requester.extra) } : {}),
    };
    delete csr.status;
    const meta = csr.metadata ?? ({} as ObjectMeta);
    csr.metadata = meta;
    const named = { ...meta, name: meta.name || (meta.generateName ? `${meta.generateName}xxxxx` : '') };
    const { parsed, causes } = specCauses(csr.spec, this.requests);
    causes.unshift(...metadataCauses(named));
    if (causes.length || !parsed) throw invalidError(CSR_RESOURCE, meta.name || meta.generateName || '', causes);
    return this.objects.create(csr, o, (final) => o.admit?.(final, parsed));
  }

  /** The main resource: only metadata (labels, annotations, finalizers) may change; spec and status are kept. */
  update(input: CertificateSigningRequest, o: WriteOptions = {}): Promise<CertificateSigningRequest> {
    return this.objects.update(
      input.metadata.name,
      (cur) => {
        const next: CertificateSigningRequest = { ...cur, metadata: mergeMetadata(cur.metadata, input.metadata) };
        this.check(next);
        return next;
      },
      { resourceVersion: input.metadata.resourceVersion, uid: input.metadata.uid },
      o,
    );
  }

  /**
   * The status subresource (the signer): conditions other than Approved/Denied and the certificate may change; the
   * approval conditions are kept as they are. The certificate may be set only once, and only on an approved CSR.
   */
  updateStatus(input: CertificateSigningRequest, o: WriteOptions = {}, known?: CertificateSigningRequest): Promise<CertificateSigningRequest> {
    return this.objects.update(
      input.metadata.name,
      (cur) => {
        const now = timestamp(this.clock.now());
        const kept = (cur.status?.conditions ?? []).filter((c) => APPROVAL_TYPES.has(c.type));
        const given = (input.status?.conditions ?? []).filter((c) => c && !APPROVAL_TYPES.has(c.type));
        const conditions = [...kept, ...stamp(given, cur.status?.conditions ?? [], now)];
        const certificate = input.status?.certificate;
        const next: CertificateSigningRequest = {
          ...cur,
          status: { ...(conditions.length ? { conditions } : {}), ...(certificate ? { certificate } : {}) },
        };
        const causes = conditionCauses(conditions);
        const old = cur.status?.certificate;
        if (old && certificate !== old) causes.push({ field: 'status.certificate', reason: 'FieldValueForbidden', message: 'Forbidden: updates may not modify existing certificate content' });
        if (certificate && !old) {
          if (!isApproved(next)) causes.push({ field: 'status.certificate', reason: 'FieldValueForbidden', message: 'Forbidden: certificate may only be set when the request is approved' });
          if (isDenied(next) || isFailed(next)) causes.push({ field: 'status.certificate', reason: 'FieldValueForbidden', message: 'Forbidden: certificate may not be set on a denied or failed request' });
          const p = certificateProblem(certificate);
          if (p) causes.push({ field: 'status.certificate', message: `Invalid value: ${p}` });
        }
        if (causes.length) throw invalidError(CSR_RESOURCE, cur.metadata.name, causes);
        return next;
      },
      { resourceVersion: input.metadata.resourceVersion, uid: input.metadata.uid },
      o,
      known,
    );
  }

  /**
   * The approval subresource (admins, the approver): only the Approved/Denied conditions may change; an existing one may
   * not be removed, and they exclude each other. Everything else is kept as it is.
   */
  updateApproval(input: CertificateSigningRequest, o: WriteOptions = {}, known?: CertificateSigningRequest): Promise<CertificateSigningRequest> {
    return this.objects.update(
      input.metadata.name,
      (cur) => {
        const now = timestamp(this.clock.now());
        const others = (cur.status?.conditions ?? []).filter((c) => !APPROVAL_TYPES.has(c.type));
        const given = (input.status?.conditions ?? []).filter((c) => c && APPROVAL_TYPES.has(c.type));
        const conditions = [...stamp(given, cur.status?.conditions ?? [], now), ...others];
        const next: CertificateSigningRequest = { ...cur, status: { ...cur.status, conditions } };
        const causes = conditionCauses(conditions);
        for (const c of cur.status?.conditions ?? []) {
          if (APPROVAL_TYPES.has(c.type) && !given.some((g) => g.type === c.type)) {
            causes.push({ field: 'status.conditions', reason: 'FieldValueForbidden', message: `Forbidden: updates may not remove a condition of type "${c.type}"` });
          }
        }
        if (causes.length) throw invalidError(CSR_RESOURCE, cur.metadata.name, causes);
        return next;
      },
      { resourceVersion: input.metadata.resourceVersion, uid: input.metadata.uid },
      o,
      known,
    );
  }

  delete(name: string, pre: Preconditions = {}, o: WriteOptions = {}): Promise<CertificateSigningRequest> {
    return this.objects.delete(name, pre, o);
  }

  // decide, setCertificate and fail take the CSR as the controller last read it (`known`), to save reading it again.
  // It is used only when it is the object at pre.resourceVersion, so a fresh read would have to find that very object
  // for the write to succeed; on a conflict each falls back to reading it, exactly as without it.

  /** Adds an Approved (or Denied) condition; a no-op if the CSR already carries it. For controllers. */
  async decide(name: string, decision: 'Approved' | 'Denied', reason: string, message: string, pre: Preconditions = {}, known?: CertificateSigningRequest): Promise<CertificateSigningRequest> {
    const withDecision = (cur: CertificateSigningRequest): CertificateSigningRequest => ({
      ...cur,
      metadata: { ...cur.metadata, resourceVersion: pre.resourceVersion ?? cur.metadata.resourceVersion },
      status: { ...cur.status, conditions: [...(cur.status?.conditions ?? []), { type: decision, status: 'True' as const, reason, message }] },
    });
    const at = pinned(known, pre);
    if (at && !has(at, decision)) {
      const done = await unlessConflict(() => this.updateApproval(withDecision(at), {}, at));
      if (done) return done;
    }
    const cur = await this.get(name);
    if (has(cur, decision)) return cur;
    return this.updateApproval(withDecision(cur));
  }

  /** Writes the issued certificate chain (PEM) into status.certificate. For the signer. */
  async setCertificate(name: string, chainPem: string, pre: Preconditions = {}, known?: CertificateSigningRequest): Promise<CertificateSigningRequest> {
    const withCertificate = (cur: CertificateSigningRequest): CertificateSigningRequest => ({
      ...cur,
      metadata: { ...cur.metadata, resourceVersion: pre.resourceVersion ?? cur.metadata.resourceVersion },
      status: { ...cur.status, certificate: Buffer.from(chainPem, 'utf8').toString('base64') },
    });
    const at = pinned(known, pre);
    if (at) {
      const done = await unlessConflict(() => this.updateStatus(withCertificate(at), {}, at));
      if (done) return done;
    }
    return this.updateStatus(withCertificate(await this.get(name)));
  }

  /** Adds a Failed condition (the CA refused). For the signer. */
  async fail(name: string, reason: string, message: string, pre: Preconditions = {}, known?: CertificateSigningRequest): Promise<CertificateSigningRequest> {
    const withFailure = (cur: CertificateSigningRequest): CertificateSigningRequest => ({
      ...cur,
      metadata: { ...cur.metadata, resourceVersion: pre.resourceVersion ?? cur.metadata.resourceVersion },
      status: { ...cur.status, conditions: [...(cur.status?.conditions ?? []), { type: 'Failed', status: 'True' as const, reason, message }] },
    });
    const at = pinned(known, pre);
    if (at && !isFailed(at)) {
      const done = await unlessConflict(() => this.updateStatus(withFailure(at), {}, at));
      if (done) return done;
    }
    const cur = await this.get(name);
    if (isFailed(cur)) return cur;
    return this.updateStatus(withFailure(cur));
  }

  private check(csr: CertificateSigningRequest): void {
    const causes = metadataCauses(csr.metadata);
    if (causes.length) throw invalidError(CSR_RESOURCE, csr.metadata.name, causes);
  }
}

/** `known` if it is the object at pre.resourceVersion, else undefined. */
function pinned(known: CertificateSigningRequest | undefined, pre: Preconditions): CertificateSigningRequest | undefined {
  return known && pre.resourceVersion !== undefined && known.metadata.resourceVersion === pre.resourceVersion ? known : undefined;
}

/** The write's result, or undefined when it met a 409 Conflict. */
async function unlessConflict<T>(write: () => Promise<T>): Promise<T | undefined> {
  try {
    return await write();
  } catch (e) {
    if (e instanceof TrustplaneError && e.reason === 'Conflict') return undefined;
    throw e;
  }
}

/** New conditions get timestamps; ones already present keep theirs. */
function stamp(given: CsrCondition[], existing: CsrCondition[], now: string): CsrCondition[] {
  return given.map((c) => {
    const old = existing.find((e) => e.type === c.type);
    const out: CsrCondition = { ...c };
    if (!out.lastUpdateTime) out.lastUpdateTime = old?.lastUpdateTime ?? now;
    if (!out.lastTransitionTime) out.lastTransitionTime = old && old.status === c.status ? (old.lastTransitionTime ?? now) : now;
    return out;
  });
}

function certificateProblem(b64: string): string | undefined {
  if (!B64.test(b64) || b64.length % 4 !== 0) return 'not base64-encoded data';
  try {
    const ders = pemDecodeAll(Buffer.from(b64, 'base64').toString('latin1'), 'CERTIFICATE');
    for (const d of ders) parseCertificate(d);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/** The metadata a main-resource update may change: labels, annotations, finalizers, owner references. */
export function mergeMetadata(cur: ObjectMeta, given: ObjectMeta): ObjectMeta {
  const out: ObjectMeta = { ...cur };
  for (const k of ['labels', 'annotations', 'finalizers', 'ownerReferences'] as const) {
    if (given[k] === undefined || given[k] === null) delete out[k];
    else (out as Record<string, unknown>)[k] = given[k];
  }
  return out;
}
