// Subscribers through the npm graphql-ws client, one `ws` WebSocket each (`ws` offers
// permessage-deflate in its handshake by default, as browsers do), and bare `ws`
// sockets for the floor, which speaks no GraphQL.
//
// A subscriber is ready once it has its initial result (live, subscription), its
// connection_ack (`subscribe: false`: the memory scenario's bare connections), or its
// open socket (floor). It stamps performance.now() where the application would see a
// result: in graphql-ws's `next` sink (for the floor: after JSON.parse of the frame).

import { performance } from "node:perf_hooks";
import { createClient } from "graphql-ws";
import WebSocket from "ws";
import { LoadgenError } from "./graphql_http.mjs";

const Phase = Object.freeze({
  CONNECTING: "connecting",
  SUBSCRIBED: "subscribed",
  LIVE: "live",
  CLOSING: "closing",
  ENDED: "ended",
});

// One write and the subscribers still waiting for it.
export class Round {
  constructor(marker, expected) {
    this.marker = marker;
    this.expected = expected;
    this.hits = [];
    this.first = null; // [subscriber, result] of the first hit
    this.done = new Promise((resolve) => {
      this.resolve = resolve;
    });
    if (expected === 0) this.resolve();
  }

  hit(receivedAt, subscriber, result) {
    if (this.first === null) this.first = [subscriber, result];
    this.hits.push(receivedAt);
    if (this.hits.length >= this.expected) this.resolve();
  }
}

const holds = (result, marker) =>
  result?.data?.messages?.edges?.some((edge) => edge?.node?.body === marker) ?? false;

class Subscriber {
  constructor() {
    this.phase = Phase.CONNECTING;
    this.round = null;
    this.error = null;
    this.socket = null;
    this.initialBytes = 0;
    this.lastFrameBytes = 0;
    this.nextResults = 0;
    this.ready = new Promise((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.ready.catch(() => {});
    this.isClosed = false;
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
  }

  markClosed(reason) {
    this.fail(reason);
    this.phase = Phase.ENDED;
    this.isClosed = true;
    this.resolveClosed();
  }

  get negotiated() {
    return this.socket?.extensions ?? "";
  }

  watch(socket) {
    this.socket = socket;
    // Registered after the client's own handler: the frame's size, once it is handled.
    socket.on("message", (data) => {
      this.lastFrameBytes = data.length;
      if (this.phase === Phase.LIVE && this.initialBytes === 0) this.initialBytes = data.length;
    });
  }

  received(result, receivedAt) {
    this.nextResults += 1;
    const current = this.round;
    if (current !== null && holds(result, current.marker)) {
      this.round = null;
      current.hit(receivedAt, this, result);
    }
  }

  becomeLive() {
    this.phase = Phase.LIVE;
    this.resolveReady();
  }

  fail(reason) {
    if (this.phase === Phase.CLOSING || this.phase === Phase.ENDED) return;
    this.phase = Phase.ENDED;
    this.error = reason;
    this.rejectReady(new LoadgenError(reason));
  }
}

// A graphql-ws client with one operation (or none: `subscribe: false`).
export class GraphqlWsSubscriber extends Subscriber {
  constructor({ url, token, document, variables, subscribe = true, ackTimeoutMs }) {
    super();
    this.url = url;
    this.token = token;
    this.document = document;
    this.variables = variables;
    this.subscribe = subscribe;
    this.ackTimeoutMs = ackTimeoutMs;
    this.client = null;
  }

  start() {
    this.client = createClient({
      url: this.url,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${this.token}` },
      lazy: false,
      retryAttempts: 0,
      connectionAckWaitTimeout: this.ackTimeoutMs,
      onNonLazyError: (error) => this.fail(`connection failed: ${describe(error)}`),
      on: {
        opened: (socket) => this.watch(socket),
        connected: () => this.onConnected(),
        closed: (event) => this.markClosed(`socket closed: ${describe(event)}`),
      },
    });
    return this.ready;
  }

  onConnected() {
    if (!this.subscribe) {
      this.becomeLive();
      return;
    }
    this.phase = Phase.SUBSCRIBED;
    const payload = { query: this.document, variables: this.variables, operationName: "Msgs" };
    this.client.subscribe(payload, {
      next: (result) => this.onResult(result, performance.now()),
      error: (error) => this.fail(`subscription error: ${describe(error)}`),
      complete: () => this.fail("subscription completed"),
    });
  }

  onResult(result, receivedAt) {
    if (this.phase === Phase.LIVE) {
      this.received(result, receivedAt);
    } else if (this.phase === Phase.SUBSCRIBED) {
      if (result.errors || !result.data?.messages)
        this.fail(`initial result has errors: ${JSON.stringify(result).slice(0, 300)}`);
      else this.becomeLive();
    }
  }

  close() {
    if (this.phase !== Phase.ENDED) this.phase = Phase.CLOSING;
    const disposed = this.client?.dispose();
    if (disposed instanceof Promise) disposed.catch(() => {});
    if (!this.socket) this.markClosed("never opened");
  }
}

// A bare `ws` socket for the floor: no subprotocol, no GraphQL.
export class FloorSubscriber extends Subscriber {
  constructor({ url }) {
    super();
    this.url = url;
  }

  start() {
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.on("open", () => this.becomeLive());
    socket.on("message", (data) => {
      const receivedAt = performance.now();
      this.lastFrameBytes = data.length;
      this.received(JSON.parse(data).payload, receivedAt);
    });
    socket.on("error", (error) => this.fail(`socket error: ${describe(error)}`));
    socket.on("close", (code) => this.markClosed(`socket closed: ${code}`));
    return this.ready;
  }

  close() {
    if (this.phase !== Phase.ENDED) this.phase = Phase.CLOSING;
    this.socket?.close(1000);
  }
}

function describe(value) {
  if (value instanceof Error) return value.message;
  if (value && typeof value === "object" && "code" in value)
    return `code ${value.code}${value.reason ? ` (${value.reason})` : ""}`;
  return String(value);
}

function timeout(ms, message) {
  let timer;
  const promise = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new LoadgenError(message)), ms);
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

// Open `count` subscribers made by `make(index)`, at most `concurrency` handshakes at a
// time, each ready within `connectTimeoutMs`, all within `readyTimeoutMs`.
export async function openSubscribers(
  count,
  make,
  { concurrency, connectTimeoutMs, readyTimeoutMs },
) {
  const subscribers = [];
  let next = 0;
  const failures = [];
  async function worker() {
    while (next < count && !failures.length) {
      const subscriber = make(next);
      next += 1;
      subscribers.push(subscriber);
      const limit = timeout(connectTimeoutMs, `not ready in ${connectTimeoutMs} ms`);
      try {
        await Promise.race([subscriber.start(), limit.promise]);
      } catch (error) {
        failures.push(error);
      } finally {
        limit.cancel();
      }
    }
  }
  const overall = timeout(readyTimeoutMs, `subscribers not ready in ${readyTimeoutMs} ms`);
  try {
    await Promise.race([Promise.all(Array.from({ length: concurrency }, worker)), overall.promise]);
    if (failures.length)
      throw new LoadgenError(
        `${failures.length} subscribers failed; first: ${failures[0].message}`,
      );
    return subscribers;
  } catch (error) {
    next = count; // no more handshakes
    for (const subscriber of subscribers) subscriber.socket?.terminate();
    throw error;
  } finally {
    overall.cancel();
  }
}

// Close every socket; terminate those still open after `timeoutMs`. Returns how many.
export async function closeSubscribers(subscribers, timeoutMs) {
  for (const subscriber of subscribers) subscriber.close();
  const limit = timeout(timeoutMs, "close timed out");
  await Promise.race([Promise.all(subscribers.map((s) => s.closed)), limit.promise]).catch(
    () => {},
  );
  limit.cancel();
  let terminated = 0;
  for (const subscriber of subscribers) {
    if (!subscriber.isClosed) {
      subscriber.socket?.terminate();
      terminated += 1;
    }
  }
  return terminated;
}
