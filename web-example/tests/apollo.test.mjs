// Apollo Client 4 against the real server: a `query ... @live` streams over
// graphql-transport-ws through GraphQLWsLink, everything else goes over HTTP.
//
// How a live query is consumed with Apollo Client 4:
// - `client.subscribe()` refuses a query document: it runs
//   `checkDocument(query, OperationTypeNode.SUBSCRIPTION)`, which throws an invariant
//   error for anything but a `subscription` operation (asserted below, so a future
//   Apollo that lifts this shows up here).
// - `client.watchQuery()` is the way. Routing is the link's business: the split link
//   sends operations carrying `@live` (and subscriptions) to GraphQLWsLink, whose
//   graphql-ws client keeps the `subscribe` open. Apollo maps every result the link
//   emits for a query through the cache (`getResultsFromLink`), so each live push
//   becomes a new emission of the ObservableQuery: the full, current result.
// - Both with Apollo's default `cache-first` (each push is written to the
//   InMemoryCache, normalised, and the query re-emits from it) and with `no-cache`
//   (each emission is exactly what the server pushed); both are run below.
// - No `refetchQueries` and no polling: the update arrives because the server
//   re-ran the live query after the HTTP mutation committed.
// - The query carries `@live` only on the operation, so Apollo's document transforms
//   (adding `__typename`) leave it in place and the server sees it.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { loadDevMessages, loadErrorMessages } from '@apollo/client/dev';
import { SetContextLink } from '@apollo/client/link/context';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { importTs } from './typescript.mjs';
import { startServer, webRoot } from './server.mjs';

// Apollo 4 ships error texts separately; load them so failures (and the check below) read plainly.
loadDevMessages();
loadErrorMessages();

// The web client's own predicate: subscriptions, and queries with @live (unless @live(if: false)).
const { isStreamed } = await importTs('src/graphql/live.ts');

const ARTIFACTS = join(webRoot, 'test-artifacts');
const UPDATE_TIMEOUT_MS = 10_000;

const SIGN_UP = gql`
  mutation SignUp($input: SignUpInput!) {
    signUp(input: $input) { token user { id name } }
  }
`;
const CREATE_CHANNEL = gql`
  mutation CreateChannel($input: CreateChannelInput!) {
    createChannel(input: $input) { id name }
  }
`;
const SEND_MESSAGE = gql`
  mutation SendMessage($input: SendMessageInput!) {
    sendMessage(input: $input) { id body }
  }
`;
const LIVE_MESSAGES = gql`
  query LiveMessages($channelId: ID!) @live {
    messages(channelId: $channelId, first: 20) {
      edges { node { id body author { name } } }
    }
  }
`;

/** An Apollo Client whose `@live` queries and subscriptions go over WebSocket, the rest over HTTP. */
function makeClient(server, session) {
  const wsClient = createClient({
    url: server.wsUrl,
    webSocketImpl: WebSocket,
    // Read when the socket opens (lazily, on the first streamed operation), so the
    // token from signUp is already there.
    connectionParams: () => (session.token ? { authorization: `Bearer ${session.token}` } : {}),
    retryAttempts: 0,
  });
  const auth = new SetContextLink((prev) => ({
    headers: { ...prev.headers, ...(session.token ? { authorization: `Bearer ${session.token}` } : {}) },
  }));
  const http = auth.concat(new HttpLink({ uri: server.graphqlUrl }));
  const ws = new GraphQLWsLink(wsClient);
  const routed = [];
  const link = ApolloLink.split(
    (operation) => {
      const streamed = isStreamed(operation.query, operation.operationName, operation.variables);
      routed.push({ name: operation.operationName, via: streamed ? 'ws' : 'http' });
      return streamed;
    },
    ws,
    http,
  );
  const client = new ApolloClient({ link, cache: new InMemoryCache() });
  return { client, wsClient, routed };
}

/** The first result seen so far or from now on that satisfies `predicate`, or a timeout. */
function firstMatching(results, predicate, what) {
  return new Promise((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`timed out waiting for ${what}; saw ${JSON.stringify(results.seen)}`)), UPDATE_TIMEOUT_MS);
    const check = () => {
      const hit = results.seen.find(predicate);
      if (hit) {
        clearTimeout(timer);
        results.listeners.delete(check);
        done(hit);
      }
    };
    results.listeners.add(check);
    check();
  });
}

describe('Apollo Client 4 with GraphQLWsLink', { timeout: 60_000 }, () => {
  let server;
  let apollo;
  const session = { token: null };

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    server = await startServer({ logPath: join(ARTIFACTS, 'apollo-server.log'), web: false });
    apollo = makeClient(server, session);
  });

  after(async () => {
    apollo?.client.stop();
    await apollo?.wsClient.dispose();
    await server?.stop();
  });

  it('refuses client.subscribe() for a query document (hence watchQuery)', () => {
    assert.throws(
      () => apollo.client.subscribe({ query: LIVE_MESSAGES, variables: { channelId: '1' } }),
      /Running a subscription requires a graphql subscription, but a query was used instead/,
    );
  });

  it('signs up over HTTP', async () => {
    const { client } = apollo;
    const signUp = await client.mutate({
      mutation: SIGN_UP,
      variables: {
        input: { email: 'apollo@example.com', password: 'correct-horse-battery-staple-42', name: 'Apollo', workspaceName: 'Apollo Inc' },
      },
    });
    session.token = signUp.data.signUp.token;
    assert.equal(signUp.data.signUp.user.name, 'Apollo');
    assert.deepEqual(apollo.routed.splice(0), [{ name: 'SignUp', via: 'http' }]);
  });

  for (const fetchPolicy of ['cache-first', 'no-cache']) {
    it(`watchQuery (${fetchPolicy}) receives @live updates over the WebSocket after an HTTP mutation`, () =>
      liveUpdate(fetchPolicy));
  }

  async function liveUpdate(fetchPolicy) {
    const { client, routed } = apollo;
    assert.ok(session.token, 'signed up');
    const channel = await client.mutate({ mutation: CREATE_CHANNEL, variables: { input: { name: `apollo-${fetchPolicy}` } } });
    const channelId = channel.data.createChannel.id;
    const body = `hello from Apollo (${fetchPolicy})`;

    const results = { seen: [], listeners: new Set() };
    const observable = client.watchQuery({ query: LIVE_MESSAGES, variables: { channelId }, fetchPolicy });
    const subscription = observable.subscribe({
      next: (result) => {
        if (result.error) results.seen.push({ error: String(result.error) });
        else if (result.data) results.seen.push(result.data.messages.edges.map((edge) => edge.node.body));
        for (const listener of [...results.listeners]) listener();
      },
      error: (error) => {
        results.seen.push({ error: String(error) });
        for (const listener of [...results.listeners]) listener();
      },
    });
    try {
      const first = await firstMatching(results, (r) => Array.isArray(r) || r.error, 'the first live result');
      assert.deepEqual(first, [], 'the channel starts empty');

      const sent = await client.mutate({
        mutation: SEND_MESSAGE,
        variables: { input: { channelId, body, idempotencyKey: `apollo-${fetchPolicy}` } },
      });
      assert.equal(sent.data.sendMessage.body, body);

      const updated = await firstMatching(results, (r) => Array.isArray(r) && r.includes(body), 'a live result with the new message');
      assert.deepEqual(updated, [body]);
      assert.equal(results.seen.filter((r) => !Array.isArray(r)).length, 0, 'no errors');

      // The split sent the live query over the socket and the rest over HTTP.
      assert.deepEqual(routed.splice(0), [
        { name: 'CreateChannel', via: 'http' },
        { name: 'LiveMessages', via: 'ws' },
        { name: 'SendMessage', via: 'http' },
      ]);
    } finally {
      subscription.unsubscribe();
    }
  }
});
