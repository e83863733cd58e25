/**
 * An error caused by the user's input (a file, a field, a flag). The CLI prints its message
 * without a stack trace and exits with status 2; every other error is a bug and keeps its stack.
 */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}

export function isUserError(error: unknown): error is UserError {
  return error instanceof UserError;
}
