import { graphqlHttpUrl } from '../graphql/endpoint';

/**
 * Upload and download URLs are absolute when the server has a PUBLIC_URL, and
 * relative to the server (`/files/...`) when it has not: resolve them against the
 * GraphQL endpoint, which is the server whatever origin the page came from.
 */
export function serverUrl(url: string): string {
  return new URL(url, graphqlHttpUrl()).toString();
}
