// /version and API discovery, aggregated (apidiscovery.k8s.io/v2, what kubectl 1.32 asks for first) and legacy.
import { GROUPS, RESOURCES, groupVersion, type ResourceDef } from './resources.js';

/** kubectl's dispatcher runs its bundled client matching this minor version. */
export const KUBE_VERSION = { major: '1', minor: '32', gitVersion: 'v1.32.0+trustplane' };

export const AGGREGATED_CONTENT_TYPE = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList';

export function versionInfo() {
  return {
    ...KUBE_VERSION,
    gitCommit: '0000000000000000000000000000000000000000',
    gitTreeState: 'clean',
    buildDate: '2025-01-01T00:00:00Z',
    goVersion: `node${process.versions.node}`,
    compiler: 'tsc',
    platform: `${process.platform}/${process.arch === 'x64' ? 'amd64' : process.arch}`,
  };
}

/** True when the Accept header asks for aggregated discovery v2. */
export function wantsAggregated(accept: string | undefined): boolean {
  if (!accept) return false;
  return accept.split(',').some((part) => {
    const p = part.replace(/\s+/g, '');
    return p.includes('as=APIGroupDiscoveryList') && p.includes('g=apidiscovery.k8s.io') && p.includes('v=v2') && !p.includes('v=v2beta1');
  });
}

const inGroup = (group: string) => RESOURCES.filter((r) => r.group === group);

function aggregatedResource(r: ResourceDef) {
  const kind = { group: r.group, version: r.version, kind: r.kind };
  return {
    resource: r.resource,
    responseKind: kind,
    scope: r.namespaced ? 'Namespaced' : 'Cluster',
    singularResource: r.singular,
    verbs: r.verbs,
    ...(r.shortNames.length ? { shortNames: r.shortNames } : {}),
    ...(r.categories ? { categories: r.categories } : {}),
    ...(r.subresources.length ? { subresources: r.subresources.map((s) => ({ subresource: s.name, responseKind: kind, verbs: s.verbs })) } : {}),
  };
}

function aggregatedGroup(group: string) {
  const versions = GROUPS.filter((g) => g.group === group).map((g) => ({
    version: g.version,
    resources: inGroup(group).filter((r) => r.version === g.version).map(aggregatedResource),
    freshness: 'Current',
  }));
  return { metadata: { ...(group ? { name: group } : {}), creationTimestamp: null }, versions };
}

/** GET /api (core === true) or /apis, aggregated. */
export function aggregatedDiscovery(core: boolean) {
  const groups = [...new Set(GROUPS.map((g) => g.group))].filter((g) => (core ? g === '' : g !== ''));
  return { kind: 'APIGroupDiscoveryList', apiVersion: 'apidiscovery.k8s.io/v2', metadata: {}, items: groups.map(aggregatedGroup) };
}

export function legacyApiVersions(serverAddress: string) {
  return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] };
}

function apiGroup(group: string) {
  const versions = GROUPS.filter((g) => g.group === group).map((g) => ({ groupVersion: groupVersion(g), version: g.version }));
  return { name: group, versions, preferredVersion: versions[0] };
}

export function legacyGroupList() {
  const groups = [...new Set(GROUPS.map((g) => g.group))].filter((g) => g !== '');
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: groups.map(apiGroup) };
}

export function legacyGroup(group: string) {
  if (!GROUPS.some((g) => g.group === group && group !== '')) return undefined;
  return { kind: 'APIGroup', apiVersion: 'v1', ...apiGroup(group) };
}

export function resourceList(group: string, version: string) {
  if (!GROUPS.some((g) => g.group === group && g.version === version)) return undefined;
  const resources = inGroup(group)
    .filter((r) => r.version === version)
    .flatMap((r) => [
      {
        name: r.resource,
        singularName: r.singular,
        namespaced: r.namespaced,
        kind: r.kind,
        verbs: r.verbs,
        ...(r.shortNames.length ? { shortNames: r.shortNames } : {}),
      },
      ...r.subresources.map((s) => ({ name: `${r.resource}/${s.name}`, singularName: '', namespaced: r.namespaced, kind: r.kind, verbs: s.verbs })),
    ]);
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: groupVersion({ group, version }), resources };
}
