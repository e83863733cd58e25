/**
 * An answer the service gives on purpose: a 4xx or 503 with a one-line message for the client.
 * The reply body is `{ "error": message, "code": code, "status": status }`; `code` is stable and
 * meant for programs, `message` names the field, limit or flag and what was expected.
 */
export class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
    this.name = 'HttpError';
  }
}

export interface ErrorBody {
  error: string;
  code: string;
  status: number;
}

export function errorBody(error: HttpError): ErrorBody {
  return { error: error.message, code: error.code, status: error.status };
}

/** Megabytes as users give them, for messages. */
export function formatMb(bytes: number): string {
  const mb = bytes / (1024 * 1024);
  return `${Number.isInteger(mb) ? mb : mb.toFixed(1)} MB`;
}
