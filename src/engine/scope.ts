/**
 * Memory scopes. Every tensor made inside `tidy(fn)` is freed when fn returns, except the
 * tensors it returns (found in arrays, maps and plain objects) and those passed to `keep()`.
 * Returned tensors move to the enclosing scope, so nested tidies compose.
 */
export interface ScopedTensor {
  dispose(): void;
  readonly isDisposed: boolean;
  /** Gives up the native handle without freeing it (the scope frees many in one call). */
  releaseHandle(): Handle | null;
  /** Called when the tensor leaves every scope: from now on only dispose() or GC frees it. */
  escape(): void;
}

import { native, type Handle } from './native.js';

export const TENSOR_BRAND: unique symbol = Symbol('stcnet.tensor');

interface Scope {
  tensors: ScopedTensor[];
}

const scopes: Scope[] = [];
const kept = new WeakSet<ScopedTensor>();

/** Called by the Tensor constructor; returns false when no scope is open (the tensor escapes at once). */
export function track(tensor: ScopedTensor): boolean {
  const scope = scopes[scopes.length - 1];
  if (!scope) return false;
  scope.tensors.push(tensor);
  return true;
}

/** Exempts a tensor from every enclosing tidy() scope; the caller owns it. */
export function keep<T extends ScopedTensor>(tensor: T): T {
  kept.add(tensor);
  return tensor;
}

export function scopeDepth(): number {
  return scopes.length;
}

function isTensor(value: unknown): value is ScopedTensor {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[TENSOR_BRAND] === true;
}

function collectReturned(value: unknown, into: Set<ScopedTensor>, depth = 0): void {
  if (depth > 8 || value === null || typeof value !== 'object') return;
  if (isTensor(value)) {
    into.add(value);
    return;
  }
  if (Array.isArray(value)) {
    for (const item of value) collectReturned(item, into, depth + 1);
  } else if (value instanceof Map) {
    for (const item of value.values()) collectReturned(item, into, depth + 1);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const item of Object.values(value)) collectReturned(item, into, depth + 1);
  }
}

function closeScope(scope: Scope, result: unknown): void {
  const returned = new Set<ScopedTensor>();
  collectReturned(result, returned);
  const parent = scopes[scopes.length - 1];
  const handles: Handle[] = [];
  for (const tensor of scope.tensors) {
    if (returned.has(tensor)) {
      if (parent) parent.tensors.push(tensor);
      else tensor.escape();
    } else if (kept.has(tensor)) {
      tensor.escape();
    } else {
      const handle = tensor.releaseHandle();
      if (handle !== null) handles.push(handle);
    }
  }
  if (handles.length > 0) native.disposeMany(handles);
}

/**
 * Runs fn and frees every tensor it made that it does not return. fn must be synchronous: a scope
 * open across an `await` would also collect tensors that unrelated code makes meanwhile.
 */
export function tidy<T>(fn: () => T): T {
  const scope: Scope = { tensors: [] };
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (error) {
    scopes.splice(scopes.lastIndexOf(scope), 1);
    closeScope(scope, undefined);
    throw error;
  }
  scopes.splice(scopes.lastIndexOf(scope), 1);
  if (result instanceof Promise) {
    closeScope(scope, undefined);
    throw new TypeError('tidy(fn): fn returned a Promise; tidy scopes are synchronous, so wrap each synchronous step in its own tidy()');
  }
  closeScope(scope, result);
  return result;
}

/** Disposes every tensor found in `value` (a tensor, or arrays/objects of them). */
export function dispose(value: unknown): void {
  const found = new Set<ScopedTensor>();
  collectReturned(value, found);
  for (const tensor of found) tensor.dispose();
}
