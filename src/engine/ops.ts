import { native } from './native.js';
import { ArgumentError, translateNativeError } from './errors.js';

/**
 * Operator ids by qualified name ('aten::add.Tensor'); the dispatcher's schema lookup happens
 * once per operator, so a call costs one Map lookup plus the boxed call itself.
 */
const operatorIds = new Map<string, number>();

export function operatorId(qualified: string): number {
  let id = operatorIds.get(qualified);
  if (id === undefined) {
    const dot = qualified.indexOf('.', qualified.indexOf('::') + 2);
    const name = dot < 0 ? qualified : qualified.slice(0, dot);
    const overload = dot < 0 ? '' : qualified.slice(dot + 1);
    if (!name.includes('::')) throw new ArgumentError(`operator name "${qualified}" must be namespaced, e.g. "aten::${qualified}"`);
    try {
      id = native.findOperator(name, overload);
    } catch (error) {
      throw translateNativeError(error);
    }
    operatorIds.set(qualified, id);
  }
  return id;
}

/** The schema of an operator, e.g. for `stcnet` error messages or exploring the escape hatch. */
export function operatorSchema(qualified: string): string {
  return native.operatorSchema(operatorId(qualified));
}

/** The argument and return types of an operator, as its schema writes them ("Tensor", "int[]", ...). */
export function operatorTypes(qualified: string): { arguments: string[]; returns: string[] } {
  return native.operatorTypes(operatorId(qualified));
}

/** Calls an operator with handles and plain values; results come back as handles. */
export function callNative(qualified: string, args: unknown[], discardResult = false): unknown {
  const id = operatorId(qualified);
  try {
    return native.call(id, discardResult, ...args);
  } catch (error) {
    throw translateNativeError(error);
  }
}
