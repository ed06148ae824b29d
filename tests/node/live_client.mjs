// A live query through the npm graphql-ws client: prints each result as one JSON line.
// Usage: node live_client.mjs <ws-url> <token> <channel-id> <results-to-wait-for>
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const [url, token, channel, wanted] = process.argv.slice(2);
const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: { authorization: `Bearer ${token}` },
  retryAttempts: 0,
});

const query = `query Live($channel: ID!) @live {
  messages(channelId: $channel, first: 10) { edges { node { id body author { name } } } }
}`;

const timer = setTimeout(() => {
  console.error("timed out");
  process.exit(2);
}, 15000);

let seen = 0;
const iterator = client.iterate({ query, variables: { channel } });
try {
  for await (const result of iterator) {
    console.log(JSON.stringify(result));
    seen += 1;
    if (seen >= Number(wanted)) break;
  }
} finally {
  clearTimeout(timer);
  await client.dispose();
}
