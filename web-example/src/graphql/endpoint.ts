/**
 * Where the GraphQL endpoint is: VITE_GRAPHQL_URL if set at build time, else the
 * page's own origin at /graphql (the Python server serves the built app there, and
 * the Vite dev server proxies it). WebSocket and HTTP share the path.
 */
const configured: string = import.meta.env.VITE_GRAPHQL_URL ?? '/graphql';

export function graphqlHttpUrl(): string {
  return new URL(configured, window.location.href).toString();
}

export function graphqlWsUrl(): string {
  const url = new URL(configured, window.location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}
