// Kubeconfig files: one built for a cluster's admin, and merged into an existing file the way gcloud's get-credentials does.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { parse, stringify } from 'yaml';
import { writeFileAtomic } from '../util/files.js';
import { invalid } from '../util/errors.js';

export interface KubeconfigEntry {
  /** Names the cluster, user and context entries. */
  name: string;
  server: string;
  caBundle: string;
  clientCert: string;
  clientKey: string;
  user: string;
}

interface Named {
  name: string;
  [k: string]: unknown;
}

interface KubeconfigFile {
  apiVersion?: string;
  kind?: string;
  clusters?: Named[];
  users?: Named[];
  contexts?: Named[];
  'current-context'?: string;
  preferences?: unknown;
  [k: string]: unknown;
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

function entries(e: KubeconfigEntry) {
  return {
    cluster: { name: e.name, cluster: { server: e.server, 'certificate-authority-data': b64(e.caBundle) } },
    user: { name: e.name, user: { 'client-certificate-data': b64(e.clientCert), 'client-key-data': b64(e.clientKey) } },
    context: { name: e.name, context: { cluster: e.name, user: e.name } },
  };
}

/** A whole kubeconfig holding one cluster, with it as the current context. */
export function buildKubeconfig(e: KubeconfigEntry): string {
  const x = entries(e);
  const doc: KubeconfigFile = { apiVersion: 'v1', kind: 'Config', clusters: [x.cluster], users: [x.user], contexts: [x.context], 'current-context': e.name, preferences: {} };
  return stringify(doc);
}

/** The file get-credentials writes to: the first path of $KUBECONFIG, else ~/.kube/config (kubectl's own rule for writes). */
export function defaultKubeconfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const first = (env.KUBECONFIG ?? '').split(delimiter).find(Boolean);
  return first ?? join(env.HOME || homedir(), '.kube', 'config');
}

function upsert(list: Named[] | undefined, item: Named): Named[] {
  const out = (list ?? []).filter((x) => x && x.name !== item.name);
  out.push(item);
  return out;
}

/** Adds or replaces the entry's cluster, user and context in `path` (created 0600 if missing) and makes it current. */
export function mergeKubeconfig(path: string, e: KubeconfigEntry): void {
  let doc: KubeconfigFile = { apiVersion: 'v1', kind: 'Config' };
  if (existsSync(path)) {
    const text = readFileSync(path, 'utf8');
    let parsed: unknown;
    try {
      parsed = text.trim() ? parse(text) : {};
    } catch (err) {
      throw invalid(`${path} is not a valid kubeconfig: ${(err as Error).message}`, 'fix or move the file, or pass --kubeconfig to write elsewhere');
    }
    if (parsed !== null && typeof parsed !== 'object') throw invalid(`${path} is not a valid kubeconfig: not a mapping`, 'fix or move the file, or pass --kubeconfig to write elsewhere');
    doc = { apiVersion: 'v1', kind: 'Config', ...(parsed as KubeconfigFile | null) };
  }
  const x = entries(e);
  doc.clusters = upsert(doc.clusters, x.cluster);
  doc.users = upsert(doc.users, x.user);
  doc.contexts = upsert(doc.contexts, x.context);
  doc['current-context'] = e.name;
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileAtomic(path, stringify(doc), 0o600);
}
