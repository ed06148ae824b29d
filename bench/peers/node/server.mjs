// Node peer for the benchmarks: the usual way to serve `@live` in Node.
//
// graphql-ws (on the `ws` package) for graphql-transport-ws, with
// @n1ru4l/in-memory-live-query-store as its `execute`, serving the chat schema subset
// the load generator uses. Data lives in memory. Each sendMessage invalidates
// `Channel:<id>`, which the store maps to every live query that read that channel's
// messages; each of those re-executes on its own (the store has no sharing between
// identical queries). Auth is accepted but not verified: a token names its user.
//
// GET /livez answers {"executions", "cohorts", "subscribers", "connections"}, as our
// server does: `executions` counts every run of a live query by the store (initial
// and re-executions), `cohorts` is null (the store has none), `subscribers` the
// operations in flight over WebSocket. PEER_PERMESSAGE_DEFLATE=1 turns on `ws`'s
// permessage-deflate (off by default in `ws`, and here, as the fan-out runs use it).
//
// Usage: node server.mjs [--port PORT]   (or env PORT); listens on 127.0.0.1 only.
//        node server.mjs --print-schema    prints the SDL it serves.

import http from "node:http";
import {
  GraphQLBoolean,
  GraphQLID,
  GraphQLInputObjectType,
  GraphQLInt,
  GraphQLList,
  GraphQLNonNull,
  GraphQLObjectType,
  GraphQLSchema,
  GraphQLString,
  execute as graphqlExecute,
  parse,
  printSchema,
  specifiedDirectives,
  specifiedRules,
  validate,
} from "graphql";
import { WebSocketServer } from "ws";
import { useServer } from "graphql-ws/use/ws";
import { InMemoryLiveQueryStore } from "@n1ru4l/in-memory-live-query-store";
import {
  GraphQLLiveDirective,
  NoLiveMixedWithDeferStreamRule,
} from "@n1ru4l/graphql-live-query";

const HOST = "127.0.0.1";
const MAX_BODY_BYTES = 1 << 20;
const DEFAULT_PAGE = 50;
const MAX_PAGE = 100;

// In-memory data: users and channels by id, messages per channel (oldest first).
const db = {
  nextId: 1,
  users: new Map(),
  channels: new Map(),
  messagesByChannel: new Map(),
  idempotency: new Map(),
};
const newId = () => String(db.nextId++);

const liveQueryStore = new InMemoryLiveQueryStore();
const stats = { executions: 0, subscribers: 0 };

function userFromAuthorization(value) {
  const match = /^Bearer node-(\d+)$/.exec(value ?? "");
  return match ? db.users.get(match[1]) ?? null : null;
}

function requireViewer(context) {
  if (!context.viewer) throw new Error("UNAUTHENTICATED");
  return context.viewer;
}

function listMessages(channelId, first, after) {
  const all = db.messagesByChannel.get(String(channelId)) ?? [];
  const size = Math.min(Math.max(first ?? DEFAULT_PAGE, 0), MAX_PAGE);
  let end = all.length; // newest first: walk backwards from the end
  if (after) end = Math.max(0, all.findIndex((m) => m.id === after));
  const page = all.slice(Math.max(0, end - size), end).reverse();
  return {
    edges: page.map((node) => ({ cursor: node.id, node })),
    pageInfo: {
      hasNextPage: end - size > 0,
      endCursor: page.length ? page[page.length - 1].id : null,
    },
  };
}

// The schema, built with graphql-js itself (the SDL is printed by `--print-schema`).
// `collectResourceIdentifiers` tells the store that a messages list depends on
// `Channel:<id>`, the identifier each sendMessage invalidates.
const nonNull = (type) => new GraphQLNonNull(type);
const list = (type) => nonNull(new GraphQLList(nonNull(type)));

const User = new GraphQLObjectType({
  name: "User",
  fields: {
    id: { type: nonNull(GraphQLID) },
    name: { type: nonNull(GraphQLString) },
    email: { type: nonNull(GraphQLString) },
  },
});
const Channel = new GraphQLObjectType({
  name: "Channel",
  fields: { id: { type: nonNull(GraphQLID) }, name: { type: nonNull(GraphQLString) } },
});
const Message = new GraphQLObjectType({
  name: "Message",
  fields: {
    id: { type: nonNull(GraphQLID) },
    body: { type: nonNull(GraphQLString) },
    channel: { type: nonNull(Channel), resolve: (message) => db.channels.get(message.channelId) },
    author: { type: nonNull(User), resolve: (message) => db.users.get(message.authorId) },
  },
});
const MessageEdge = new GraphQLObjectType({
  name: "MessageEdge",
  fields: { cursor: { type: nonNull(GraphQLString) }, node: { type: nonNull(Message) } },
});
const PageInfo = new GraphQLObjectType({
  name: "PageInfo",
  fields: { hasNextPage: { type: nonNull(GraphQLBoolean) }, endCursor: { type: GraphQLString } },
});
const MessageConnection = new GraphQLObjectType({
  name: "MessageConnection",
  fields: { edges: { type: list(MessageEdge) }, pageInfo: { type: nonNull(PageInfo) } },
});
const AuthPayload = new GraphQLObjectType({
  name: "AuthPayload",
  fields: { token: { type: nonNull(GraphQLString) }, user: { type: nonNull(User) } },
});
const Invite = new GraphQLObjectType({
  name: "Invite",
  fields: { code: { type: nonNull(GraphQLString) } },
});
const SignUpInput = new GraphQLInputObjectType({
  name: "SignUpInput",
  fields: {
    email: { type: nonNull(GraphQLString) },
    password: { type: nonNull(GraphQLString) },
    name: { type: nonNull(GraphQLString) },
    workspaceName: { type: GraphQLString },
    inviteCode: { type: GraphQLString },
  },
});
const CreateChannelInput = new GraphQLInputObjectType({
  name: "CreateChannelInput",
  fields: { name: { type: nonNull(GraphQLString) } },
});
const SendMessageInput = new GraphQLInputObjectType({
  name: "SendMessageInput",
  fields: {
    channelId: { type: nonNull(GraphQLID) },
    body: { type: nonNull(GraphQLString) },
    idempotencyKey: { type: GraphQLString },
  },
});

const Query = new GraphQLObjectType({
  name: "Query",
  fields: {
    viewer: { type: User, resolve: (_root, _args, context) => context.viewer },
    messages: {
      type: nonNull(MessageConnection),
      args: {
        channelId: { type: nonNull(GraphQLID) },
        first: { type: GraphQLInt, defaultValue: DEFAULT_PAGE },
        after: { type: GraphQLString },
      },
      resolve: (_root, args) => listMessages(args.channelId, args.first, args.after),
      extensions: {
        liveQuery: {
          collectResourceIdentifiers: (_root, args) => `Channel:${args.channelId}`,
        },
      },
    },
  },
});

const Mutation = new GraphQLObjectType({
  name: "Mutation",
  fields: {
    signUp: {
      type: nonNull(AuthPayload),
      args: { input: { type: nonNull(SignUpInput) } },
      resolve: (_root, { input }) => {
        const user = { id: newId(), name: input.name, email: input.email };
        db.users.set(user.id, user);
        return { token: `node-${user.id}`, user };
      },
    },
    createInvite: {
      type: nonNull(Invite),
      resolve: (_root, _args, context) => {
        requireViewer(context);
        return { code: `invite-${newId()}` };
      },
    },
    createChannel: {
      type: nonNull(Channel),
      args: { input: { type: nonNull(CreateChannelInput) } },
      resolve: (_root, { input }, context) => {
        requireViewer(context);
        const channel = { id: newId(), name: input.name };
        db.channels.set(channel.id, channel);
        db.messagesByChannel.set(channel.id, []);
        return channel;
      },
    },
    sendMessage: {
      type: nonNull(Message),
      args: { input: { type: nonNull(SendMessageInput) } },
      resolve: (_root, { input }, context) => {
        const viewer = requireViewer(context);
        const channelId = String(input.channelId);
        const messages = db.messagesByChannel.get(channelId);
        if (!messages) throw new Error("NOT_FOUND");
        const key = input.idempotencyKey ? `${viewer.id}:${input.idempotencyKey}` : null;
        if (key && db.idempotency.has(key)) return db.idempotency.get(key);
        const message = { id: newId(), body: input.body, channelId, authorId: viewer.id };
        messages.push(message);
        if (key) db.idempotency.set(key, message);
        // As in the library's todo example: invalidate from the mutation resolver.
        liveQueryStore.invalidate(`Channel:${channelId}`);
        eventSeq += 1;
        publishEvent(channelId, {
          kind: "CREATED",
          cursor: String(eventSeq),
          messageId: message.id,
          message,
        });
        return message;
      },
    },
  },
});

// Event subscriptions: an in-memory PubSub per channel, as graphql-ws users write it.
// Each subscriber is an async iterator over its own queue; sendMessage pushes to all.
const eventListeners = new Map();
let eventSeq = 0;

function publishEvent(channelId, event) {
  for (const push of eventListeners.get(channelId) ?? []) push(event);
}

function channelEvents(channelId) {
  const queue = [];
  let wake = null;
  let done = false;
  const push = (event) => {
    queue.push(event);
    if (wake) {
      wake();
      wake = null;
    }
  };
  if (!eventListeners.has(channelId)) eventListeners.set(channelId, new Set());
  eventListeners.get(channelId).add(push);
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    async next() {
      while (!queue.length && !done) await new Promise((resolve) => (wake = resolve));
      if (done) return { done: true, value: undefined };
      return { done: false, value: queue.shift() };
    },
    async return() {
      done = true;
      eventListeners.get(channelId)?.delete(push);
      if (wake) wake();
      return { done: true, value: undefined };
    },
  };
}

const MessageEvent = new GraphQLObjectType({
  name: "MessageEvent",
  fields: {
    kind: { type: nonNull(GraphQLString) },
    cursor: { type: nonNull(GraphQLString) },
    messageId: { type: nonNull(GraphQLID) },
    message: { type: Message },
  },
});

const Subscription = new GraphQLObjectType({
  name: "Subscription",
  fields: {
    messageEvents: {
      type: nonNull(MessageEvent),
      args: { channelId: { type: nonNull(GraphQLID) } },
      subscribe: (_root, args) => channelEvents(String(args.channelId)),
      resolve: (event) => event,
    },
  },
});

const schema = new GraphQLSchema({
  query: Query,
  mutation: Mutation,
  subscription: Subscription,
  directives: [...specifiedDirectives, GraphQLLiveDirective],
});
// The store calls this for the first run and for every re-execution of a live query.
const countedExecute = (args) => {
  stats.executions += 1;
  return graphqlExecute(args);
};
const liveExecute = liveQueryStore.makeExecute(countedExecute);
const validationRules = [...specifiedRules, NoLiveMixedWithDeferStreamRule];

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new Error("body too large"));
        req.destroy();
      } else chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function sendJson(res, status, payload) {
  const body = JSON.stringify(payload);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
  });
  res.end(body);
}

// Plain HTTP POST /graphql: queries answer once, mutations run here.
async function handleHttp(req, res) {
  if (req.method === "GET" && req.url.split("?")[0] === "/livez") {
    sendJson(res, 200, {
      executions: stats.executions,
      cohorts: null,
      subscribers: stats.subscribers,
      connections: wsServer.clients.size,
    });
    return;
  }
  if (req.method !== "POST" || req.url.split("?")[0] !== "/graphql") {
    sendJson(res, 404, { errors: [{ message: "not found" }] });
    return;
  }
  let request;
  try {
    request = JSON.parse(await readBody(req));
  } catch {
    sendJson(res, 400, { errors: [{ message: "invalid JSON body" }] });
    return;
  }
  let document;
  try {
    document = parse(request.query ?? "");
  } catch (error) {
    sendJson(res, 400, { errors: [{ message: error.message }] });
    return;
  }
  const errors = validate(schema, document, validationRules);
  if (errors.length) {
    sendJson(res, 400, { errors });
    return;
  }
  const result = await graphqlExecute({
    schema,
    document,
    variableValues: request.variables ?? {},
    operationName: request.operationName,
    contextValue: { viewer: userFromAuthorization(req.headers.authorization) },
  });
  sendJson(res, 200, result);
}

function portFromArgs() {
  const index = process.argv.indexOf("--port");
  const value = index >= 0 ? process.argv[index + 1] : process.env.PORT;
  const port = Number.parseInt(value ?? "", 10);
  if (!Number.isInteger(port) || port <= 0) {
    console.error("usage: node server.mjs --port PORT (or env PORT)");
    process.exit(2);
  }
  return port;
}

const server = http.createServer((req, res) => {
  handleHttp(req, res).catch((error) => {
    console.error(error);
    if (!res.headersSent) sendJson(res, 500, { errors: [{ message: "internal error" }] });
  });
});
server.keepAliveTimeout = 5000;

const wsServer = new WebSocketServer({
  server,
  path: "/graphql",
  perMessageDeflate: process.env.PEER_PERMESSAGE_DEFLATE === "1",
});
const wsCleanup = useServer(
  {
    schema,
    execute: liveExecute,
    validate: (s, d) => validate(s, d, validationRules),
    context: (ctx) => ({
      viewer: userFromAuthorization(ctx.connectionParams?.authorization),
    }),
    onSubscribe: () => {
      stats.subscribers += 1;
    },
    onComplete: () => {
      stats.subscribers -= 1;
    },
  },
  wsServer,
);

function shutdown() {
  wsCleanup.dispose().finally(() => {
    server.close(() => process.exit(0));
    for (const client of wsServer.clients) client.terminate();
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);

if (process.argv.includes("--print-schema")) {
  console.log(printSchema(schema));
  process.exit(0);
}
const port = portFromArgs();
server.listen(port, HOST, 4096, () => {
  console.log(`node peer listening on http://${HOST}:${port}/graphql`);
});
