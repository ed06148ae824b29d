import type { CombinedError } from 'urql';

/** One line a person can read: each GraphQL error as `CODE: message`. */
export function describeError(error: CombinedError): string {
  if (error.networkError) return `Network error: ${error.networkError.message}`;
  return error.graphQLErrors
    .map((e) => {
      const code = e.extensions?.code;
      return typeof code === 'string' ? `${code}: ${e.message}` : e.message;
    })
    .join('; ');
}
