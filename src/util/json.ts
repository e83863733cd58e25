import type { z } from 'zod';
import { UserError } from './errors.js';

/**
 * JSON text read back from a file, parsed and validated: a syntax error or a value that does not fit
 * `schema` is a UserError "WHERE: ..." naming `what` and, for the schema, the first bad field.
 */
export function parseJsonWith<T>(schema: z.ZodType<T>, text: string, where: string, what: string): T {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new UserError(`${where}: the ${what} is not valid JSON (${(error as Error).message})`);
  }
  const result = schema.safeParse(parsed);
  if (!result.success) throw new UserError(`${where}: malformed ${what}: ${result.error.issues[0]!.message} at ${result.error.issues[0]!.path.join('.')}`);
  return result.data;
}
