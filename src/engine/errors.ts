/**
 * Engine errors. A libtorch failure becomes a TorchError that names the operator and the shapes
 * of its tensor arguments; using a disposed tensor, a bad argument or a bad shape has its own class.
 */
export class EngineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** libtorch rejected an operation (shape mismatch, dtype mismatch, ...). */
export class TorchError extends EngineError {
  constructor(message: string, readonly op?: string) {
    super(message);
  }
}

/** A tensor was used after dispose() (directly, or because a tidy() scope freed it). */
export class DisposedError extends EngineError {}

/** An argument does not fit the operator's schema or the wrapper's contract. */
export class ArgumentError extends EngineError {}

/** Turns the addon's coded errors into the classes above; anything else passes through. */
export function translateNativeError(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  const code = (error as Error & { code?: string }).code;
  let translated: EngineError | undefined;
  if (code === 'ERR_TORCH') translated = new TorchError(error.message, (error as Error & { op?: string }).op);
  else if (code === 'ERR_DISPOSED') translated = new DisposedError(error.message);
  else if (code === 'ERR_ARGUMENT' || code === 'ERR_UNKNOWN_OPERATOR' || error instanceof TypeError || error instanceof RangeError) {
    translated = new ArgumentError(error.message);
  }
  return translated ?? error;
}
