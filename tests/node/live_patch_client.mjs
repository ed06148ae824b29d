// A live query over the npm graphql-ws client with `livePatch: "json-patch"`, its
// results applied by @n1ru4l/graphql-live-query-patch-json-patch's applyLiveQueryJSONPatch.
// Usage: node live_patch_client.mjs <ws-url> <token> <channel-id>
//
// Prints one JSON line once the first result is applied: {"live", "frames"}. Then, for
// each line read from stdin (a mutation: {"query", "variables"}), runs it over the same
// socket and prints {"result", "live", "frames"}: the mutation's result, the newest
// applied live result, and every frame the socket received meanwhile (id, type, bytes,
// payload members, revision). Exits when stdin ends.
import { applyLiveQueryJSONPatch } from "@n1ru4l/graphql-live-query-patch-json-patch";
import { createClient } from "graphql-ws";
import readline from "node:readline";
import WebSocket from "ws";

const [url, token, channel] = process.argv.slice(2);

let frames = [];
class RecordingWebSocket extends WebSocket {
  constructor(...args) {
    super(...args);
    // Registered before graphql-ws's own handler: frames are recorded in arrival order.
    this.on("message", (raw) => {
      const message = JSON.parse(String(raw));
      const payload = message.payload ?? {};
      frames.push({
        id: message.id ?? null,
        type: message.type,
        bytes: Buffer.byteLength(String(raw)),
        members: Object.keys(payload).sort(),
        revision: payload.revision ?? null,
      });
    });
  }
}

const client = createClient({
  url,
  webSocketImpl: RecordingWebSocket,
  connectionParams: { authorization: `Bearer ${token}`, livePatch: "json-patch" },
  retryAttempts: 0,
});

const query = `query Live($channel: ID!) @live {
  messages(channelId: $channel, first: 50) { edges { node { id body } } }
}`;

const timer = setTimeout(() => {
  console.error("timed out");
  process.exit(2);
}, 60000);

function print(line) {
  console.log(JSON.stringify({ ...line, frames }));
  frames = [];
}

let latest = null;
let applied = 0;
let onApplied = () => {};
const live = applyLiveQueryJSONPatch(client.iterate({ query, variables: { channel } }));
const following = (async () => {
  for await (const result of live) {
    latest = result;
    applied += 1;
    onApplied();
  }
})();

/** Until the applied live result reflects `version` (the wire order is checked by the test). */
async function appliedAt(version) {
  while ((latest?.extensions?.live?.version ?? -1) < version) {
    await new Promise((resolve) => (onApplied = resolve));
  }
}

async function mutate(request) {
  let result = null;
  for await (const next of client.iterate(request)) result = next;
  return result;
}

try {
  await appliedAt(0);
  print({ live: latest });
  for await (const line of readline.createInterface({ input: process.stdin })) {
    const result = await mutate(JSON.parse(line));
    await appliedAt(result.extensions?.version ?? 0);
    print({ result, live: latest, applied });
  }
} finally {
  clearTimeout(timer);
  await live.return();
  await client.dispose();
  await following;
}
