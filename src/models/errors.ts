import { UserError } from '../util/errors.js';

/**
 * An input that does not fit the model it is given to: the wrong rank, channel count or clip
 * length, or bad builder options. A UserError, so the CLI prints it without a stack trace.
 */
export class ModelInputError extends UserError {
  constructor(message: string) {
    super(message);
    this.name = 'ModelInputError';
  }
}

export function shapeText(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
