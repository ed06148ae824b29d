// messageEvents through the npm graphql-ws client: prints each event as one JSON line.
// Usage: node events_client.mjs <ws-url> <token> <channel-id> <events-to-wait-for> [after]
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const [url, token, channel, wanted, after] = process.argv.slice(2);
const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: { authorization: `Bearer ${token}` },
  retryAttempts: 0,
});

const query = `subscription Events($channel: ID!, $after: String) {
  messageEvents(channelId: $channel, after: $after) { kind cursor messageId message { body } }
}`;

const timer = setTimeout(() => {
  console.error("timed out");
  process.exit(2);
}, 15000);

let seen = 0;
const iterator = client.iterate({ query, variables: { channel, after: after ?? null } });
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
