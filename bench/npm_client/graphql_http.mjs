// Setup and writes over HTTP, as bench/loadgen.py does them: signUp (a new workspace),
// createChannel, seed messages, more users by invite; sendMessage timed from the
// moment the request was handed to the socket to the last byte of the response, each
// on a fresh connection; GET /livez; the floor's POST /frame and /trigger.

import http from "node:http";
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";

export class LoadgenError extends Error {}

const SIGN_UP = `mutation SignUp($input: SignUpInput!) {
  signUp(input: $input) { token user { id } }
}`;
const CREATE_CHANNEL = `mutation CreateChannel($input: CreateChannelInput!) {
  createChannel(input: $input) { id }
}`;
const SEND_MESSAGE = `mutation Send($input: SendMessageInput!) {
  sendMessage(input: $input) { id }
}`;
const CREATE_INVITE = "mutation Invite { createInvite { code } }";
// Members sign up a few at a time: the server hashes their passwords on a small pool.
const SIGN_UPS_IN_FLIGHT = 4;
const PAGE_SIZE = 50;

const tag = () => randomUUID().replaceAll("-", "").slice(0, 10);

export class Endpoint {
  constructor(url) {
    const parsed = new URL(url);
    const host = parsed.hostname;
    if (!["localhost", "127.0.0.1", "[::1]", "::1"].includes(host) && !host.startsWith("127."))
      throw new LoadgenError(`refusing non-loopback target ${host}`);
    if (!parsed.port) throw new LoadgenError(`the target URL needs a port: ${url}`);
    this.host = host;
    this.port = Number(parsed.port);
    this.path = parsed.pathname || "/graphql";
  }

  get wsUrl() {
    return `ws://${this.host}:${this.port}${this.path}`;
  }

  // A path next to the GraphQL endpoint (/livez, the floor's /frame and /trigger).
  sibling(path) {
    return this.path.slice(0, this.path.lastIndexOf("/")) + path;
  }
}

export function request(endpoint, method, path, body = "", headers = {}, timeoutMs = 30000) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let sentAt = 0;
    const req = http.request({
      host: endpoint.host,
      port: endpoint.port,
      path,
      method,
      agent: false,
      headers: {
        ...headers,
        "content-type": "application/json",
        "content-length": Buffer.byteLength(body),
      },
    });
    req.setTimeout(timeoutMs, () =>
      req.destroy(new LoadgenError(`${path}: no answer in ${timeoutMs} ms`)),
    );
    req.on("finish", () => {
      sentAt = performance.now();
    });
    req.on("error", reject);
    req.on("response", (res) => {
      const chunks = [];
      res.on("data", (chunk) => chunks.push(chunk));
      res.on("error", reject);
      res.on("end", () =>
        resolve({
          status: res.statusCode,
          body: Buffer.concat(chunks).toString("utf8"),
          sentAt: sentAt || started,
          doneAt: performance.now(),
        }),
      );
    });
    req.end(body);
  });
}

export async function graphql(endpoint, query, variables, token = null, timeoutMs = 30000) {
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  const body = JSON.stringify({ query, variables });
  const response = await request(endpoint, "POST", endpoint.path, body, headers, timeoutMs);
  let payload;
  try {
    payload = JSON.parse(response.body);
  } catch {
    throw new LoadgenError(`HTTP ${response.status}: ${response.body.slice(0, 300)}`);
  }
  if (response.status !== 200 || payload.errors || payload.data == null)
    throw new LoadgenError(`HTTP ${response.status}: ${JSON.stringify(payload).slice(0, 500)}`);
  return { payload, response };
}

// What setup produced: the viewer's token and the channel every subscriber watches.
export class Session {
  constructor(token = null, channelId = null, seeded = 0) {
    this.token = token;
    this.channelId = channelId;
    this.seeded = seeded;
  }
}

export async function setUp(endpoint, seedMessages) {
  const name = tag();
  const input = {
    email: `bench-${name}@example.com`,
    password: `bench-password-${name}`,
    name: "Bench User",
    workspaceName: `bench-${name}`,
  };
  const signed = await graphql(endpoint, SIGN_UP, { input });
  const token = signed.payload.data.signUp.token;
  const created = await graphql(
    endpoint,
    CREATE_CHANNEL,
    { input: { name: `bench-${name}` } },
    token,
  );
  const session = new Session(token, String(created.payload.data.createChannel.id));
  for (let index = 0; index < seedMessages; index += 1) {
    await sendMessage(endpoint, session, `seed message ${index} of the benchmark`);
    session.seeded += 1;
  }
  return session;
}

// `session` and `count - 1` more users of its workspace (signUp with an invite code).
export async function setUpMembers(endpoint, session, count) {
  const invite = await graphql(endpoint, CREATE_INVITE, {}, session.token);
  const code = invite.payload.data.createInvite.code;
  const name = tag();
  const members = new Array(count - 1);
  let next = 1;
  async function worker() {
    while (next < count) {
      const index = next;
      next += 1;
      const input = {
        email: `bench-${name}-${index}@example.com`,
        password: `bench-password-${name}`,
        name: `Bench Member ${index}`,
        inviteCode: code,
      };
      const signed = await graphql(endpoint, SIGN_UP, { input });
      members[index - 1] = new Session(
        signed.payload.data.signUp.token,
        session.channelId,
        session.seeded,
      );
    }
  }
  await Promise.all(Array.from({ length: SIGN_UPS_IN_FLIGHT }, worker));
  return [session, ...members];
}

export function sendMessage(endpoint, session, body, timeoutMs = 30000) {
  const input = {
    channelId: session.channelId,
    body,
    idempotencyKey: randomUUID().replaceAll("-", ""),
  };
  return graphql(endpoint, SEND_MESSAGE, { input }, session.token, timeoutMs);
}

// The target's live counters, or null when it has none (404 or not JSON).
export async function livez(endpoint) {
  try {
    const response = await request(endpoint, "GET", endpoint.sibling("/livez"), "", {}, 10000);
    if (response.status !== 200) return null;
    const payload = JSON.parse(response.body);
    return payload && typeof payload === "object" ? payload : null;
  } catch {
    return null;
  }
}

export function executionsOf(stats) {
  return Number.isInteger(stats?.executions) ? stats.executions : null;
}

// A `next` frame shaped like the live result for a channel with `edges` messages
// (loadgen.py's floor_frame).
function floorFrame(marker, edges) {
  const nodes = Array.from({ length: edges }, (_, index) => ({
    node: {
      id: String(100000 + index),
      body: index === 0 ? marker : `seed message ${index} of the benchmark`,
      author: { name: "Bench User" },
    },
  }));
  return JSON.stringify({
    id: "1",
    type: "next",
    payload: { data: { messages: { edges: nodes } } },
  });
}

// The round's write; for the floor, store the round's frame first (untimed).
export async function trigger(kind, endpoint, session, marker, timeoutMs) {
  if (kind !== "floor") return sendMessage(endpoint, session, marker, timeoutMs);
  const frame = floorFrame(marker, Math.min(session.seeded + 1, PAGE_SIZE));
  const stored = await request(endpoint, "POST", endpoint.sibling("/frame"), frame, {}, timeoutMs);
  if (stored.status !== 200) throw new LoadgenError(`floor /frame answered HTTP ${stored.status}`);
  const response = await request(
    endpoint,
    "POST",
    endpoint.sibling("/trigger"),
    "{}",
    {},
    timeoutMs,
  );
  if (response.status !== 200)
    throw new LoadgenError(`floor /trigger answered HTTP ${response.status}`);
  return { payload: JSON.parse(response.body), response };
}

export async function floorFanOutStats(endpoint) {
  const response = await request(endpoint, "GET", endpoint.sibling("/health"));
  return JSON.parse(response.body).last_fan_out ?? null;
}
