// KeyInfo values handed to callers: copies, so no caller can change what a store holds.
import type { KeyInfo } from './keystore.js';

export function copyKeyInfo(i: KeyInfo): KeyInfo {
  return { id: i.id, label: i.label, algorithm: { ...i.algorithm }, createdAt: new Date(i.createdAt) };
}

/** Oldest first; ties broken by id so the order is stable. */
export function byCreation(a: KeyInfo, b: KeyInfo): number {
  return a.createdAt.getTime() - b.createdAt.getTime() || a.id.localeCompare(b.id);
}
