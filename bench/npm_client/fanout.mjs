// The fan-out scenario, as loadgen.py runs it: N subscribers on one channel (over K
// variable sets and U users), `rounds` writes; for each, the time from the write's
// response (and from its request) to each subscriber's receipt of the result holding
// the round's marker. The report has loadgen.py's shape.

import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { fanoutDocument, userOf, variables } from "./cohorts.mjs";
import {
  Session,
  executionsOf,
  floorFanOutStats,
  livez,
  setUp,
  setUpMembers,
  trigger,
} from "./graphql_http.mjs";
import { summarize, round3 } from "./stats.mjs";
import {
  FloorSubscriber,
  GraphqlWsSubscriber,
  Round,
  closeSubscribers,
  openSubscribers,
} from "./subscribers.mjs";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const cpuMs = () => {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
};

function subscriberFactory(config, document, sessions) {
  const url = config.endpoint.wsUrl;
  if (config.kind === "floor") return () => new FloorSubscriber({ url });
  return (index) => {
    const session = sessions[userOf(index, config.users)];
    return new GraphqlWsSubscriber({
      url,
      token: session.token,
      document,
      variables: variables(session.channelId, index, config.cohorts),
      ackTimeoutMs: config.connectTimeout * 1000,
    });
  };
}

async function runRound(config, session, subscribers, index) {
  const marker = `fanout-${randomUUID().replaceAll("-", "")}-round-${index}`;
  const current = new Round(marker, subscribers.length);
  for (const subscriber of subscribers) subscriber.round = current;
  const cpuBefore = cpuMs();
  const { payload, response } = await trigger(
    config.kind,
    config.endpoint,
    session,
    marker,
    config.roundTimeout * 1000,
  );
  let timer;
  const timedOut = new Promise((resolve) => {
    timer = setTimeout(resolve, config.roundTimeout * 1000); // stragglers count as missed
  });
  await Promise.race([current.done, timedOut]);
  clearTimeout(timer);
  const cpuUsed = cpuMs() - cpuBefore;
  for (const subscriber of subscribers) subscriber.round = null;
  const serverSide = config.kind === "floor" ? await floorFanOutStats(config.endpoint) : null;
  const hits = [...current.hits];
  const last = hits.length ? Math.max(...hits) : response.doneAt;
  const [firstSubscriber, firstResult] = current.first ?? [null, null];
  return {
    round: index,
    expected: subscribers.length,
    received: hits.length,
    missed: subscribers.length - hits.length,
    mutation_ms: round3(response.doneAt - response.sentAt),
    from_response_ms: hits.map((t) => round3(t - response.doneAt)),
    from_request_ms: hits.map((t) => round3(t - response.sentAt)),
    window_ms: round3(last - response.sentAt),
    loadgen_cpu_ms: round3(cpuUsed),
    frame_bytes: firstSubscriber?.lastFrameBytes ?? 0,
    mutation_version: payload?.extensions?.version ?? null,
    live_version: firstResult?.extensions?.live?.version ?? null,
    floor_server_fan_out: serverSide,
  };
}

function perWrite(before, after, writes) {
  const start = executionsOf(before);
  const end = executionsOf(after);
  if (start === null || end === null || writes === 0) return null;
  return Math.round(((end - start) / writes) * 100) / 100;
}

export async function runFanout(config) {
  const started = performance.now();
  const session =
    config.kind === "floor"
      ? new Session(null, null, config.seedMessages)
      : await setUp(config.endpoint, config.seedMessages);
  const sessions =
    config.users > 1 ? await setUpMembers(config.endpoint, session, config.users) : [session];
  const setupS = (performance.now() - started) / 1000;
  const cpuBefore = cpuMs();
  const document = fanoutDocument(config.kind, config.users > 1);
  const subscribers = await openSubscribers(
    config.subscribers,
    subscriberFactory(config, document, sessions),
    {
      concurrency: config.concurrency,
      connectTimeoutMs: config.connectTimeout * 1000,
      readyTimeoutMs: config.readyTimeout * 1000,
    },
  );
  const readyS = (performance.now() - started) / 1000 - setupS;
  const connectCpuS = (cpuMs() - cpuBefore) / 1000;
  const rounds = [];
  const statsReady = await livez(config.endpoint);
  let statsAfter = null;
  let aborted = 0;
  const negotiated = subscribers.filter((s) => s.negotiated.includes("permessage-deflate")).length;
  try {
    for (let index = 0; index < config.rounds; index += 1) {
      await sleep(config.settle * 1000);
      rounds.push(await runRound(config, session, subscribers, index));
    }
    statsAfter = await livez(config.endpoint);
  } finally {
    aborted = await closeSubscribers(subscribers, 10000);
  }
  const ended = subscribers.filter((s) => s.error);
  const fromResponse = rounds.flatMap((r) => r.from_response_ms);
  const fromRequest = rounds.flatMap((r) => r.from_request_ms);
  for (const r of rounds) {
    delete r.from_response_ms;
    delete r.from_request_ms;
  }
  return {
    scenario: "fanout",
    client: "npm",
    kind: config.kind,
    subscribers: config.subscribers,
    rounds: config.rounds,
    seed_messages: session.seeded,
    deflate: true,
    deflate_negotiated: negotiated,
    cohorts: config.cohorts,
    users: config.users,
    document,
    livez: { ready: statsReady, after_rounds: statsAfter },
    live_cohorts: (statsAfter ?? statsReady ?? {}).cohorts ?? null,
    executions_per_write: perWrite(statsReady, statsAfter, rounds.length),
    latency_ms: { from_response: summarize(fromResponse), from_request: summarize(fromRequest) },
    mutation_ms: summarize(rounds.map((r) => r.mutation_ms)),
    missed: rounds.reduce((total, r) => total + r.missed, 0),
    initial_frame_bytes: subscribers[0]?.initialBytes ?? 0,
    per_round: rounds,
    setup_s: round3(setupS),
    ready_s: round3(readyS),
    warm_up_writes: 0,
    loadgen: {
      connect_cpu_s: round3(connectCpuS),
      round_cpu_ms: summarize(rounds.map((r) => r.loadgen_cpu_ms)),
      event_loop: `node ${process.version}`,
    },
    subscriptions_ended: ended.length,
    first_end_reason: ended[0]?.error ?? null,
    close_aborted: aborted,
  };
}
