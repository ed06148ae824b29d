import {
  Client,
  fetchExchange,
  subscriptionExchange,
  type ExecutionResult,
  type Operation,
  type SubscriptionForwarder,
} from '@urql/core';
import { applyLiveQueryJSONPatch } from '@n1ru4l/graphql-live-query-patch-json-patch';
import { createClient as createWsClient, type Client as WsClient } from 'graphql-ws';
import { graphqlHttpUrl, graphqlWsUrl } from './endpoint';
import { isStreamed } from './live';
import { trackConnectionStatus, type ConnectionStatusStore } from './connectionStatus';

/** One signed-in (or anonymous) user's transport: an urql client and its socket. */
export interface Session {
  readonly token: string | null;
  readonly client: Client;
  readonly connection: ConnectionStatusStore;
  dispose(): void;
}

const HTTP_ACCEPT = 'application/graphql-response+json, application/json;q=0.9';

function authorization(token: string | null): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {};
}

/**
 * Hands a streamed operation to graphql-ws. The socket asks for live results as JSON
 * patches (`livePatch` in `connection_init`): after the first, an update carries only
 * what changed, and `applyLiveQueryJSONPatch` makes each a full result again
 * (subscription results carry no revision and pass through it as they are).
 * urql keeps a stream's earlier errors unless a later result says `errors: []`, so
 * every result after the first carries its (possibly empty) list. `hasNext: true`
 * marks a live query as still streaming, as it is.
 */
function forwardTo(ws: WsClient): SubscriptionForwarder {
  return (request, operation) => ({
    subscribe(sink) {
      const results = applyLiveQueryJSONPatch(
        ws.iterate<Record<string, unknown>, Record<string, unknown>>({
          ...request,
          query: request.query ?? '',
        }),
      );
      let stopped = false;
      void (async () => {
        let first = true;
        try {
          for await (const result of results) {
            sink.next({
              ...result,
              ...(first ? {} : { errors: result.errors ?? [] }),
              ...(operation.kind === 'query' ? { hasNext: true } : {}),
            } as ExecutionResult);
            first = false;
          }
          if (!stopped) sink.complete();
        } catch (error) {
          if (!stopped) sink.error(error);
        }
      })();
      return {
        unsubscribe() {
          stopped = true;
          void results.return();
        },
      };
    },
  });
}

function streamsOverSocket(operation: Operation): boolean {
  if (operation.kind === 'subscription') return true;
  // urql types variables as AnyVariables (which admits void); they are an object or nothing.
  const variables = (operation.variables ?? undefined) as Record<string, unknown> | undefined;
  return operation.kind === 'query' && isStreamed(operation.query, undefined, variables);
}

export function createSession(token: string | null): Session {
  const ws = createWsClient({
    url: graphqlWsUrl(),
    lazy: true,
    connectionParams: () => ({ ...authorization(token), livePatch: 'json-patch' }),
    // A chat should come back by itself after a server restart or a network blip;
    // graphql-ws still gives up at once on fatal close codes (e.g. 4401, 4400).
    retryAttempts: Number.POSITIVE_INFINITY,
  });
  const client = new Client({
    url: graphqlHttpUrl(),
    // No document cache: live queries are kept current by the server, and the
    // cache's refetch-on-mutation would restart their streams for nothing.
    exchanges: [
      subscriptionExchange({
        isSubscriptionOperation: streamsOverSocket,
        forwardSubscription: forwardTo(ws),
      }),
      fetchExchange,
    ],
    // Over HTTP every operation has one result (streams go over the socket), so ask
    // for JSON only: urql's default Accept also lists text/event-stream and
    // multipart/mixed, which lets a server answer a plain mutation as a stream.
    fetchOptions: () => ({ headers: { accept: HTTP_ACCEPT, ...authorization(token) } }),
    // POST for every query: nothing here is cacheable by URL, and requests carry a token.
    preferGetMethod: false,
  });
  return {
    token,
    client,
    connection: trackConnectionStatus(ws),
    dispose: () => void ws.dispose(),
  };
}
