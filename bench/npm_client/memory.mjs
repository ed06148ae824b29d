// The memory scenario, as loadgen_scenarios.py runs it: the server's RSS with no
// subscription, then with each cumulative size of idle subscriptions, one socket each.
// The RSS is VmRSS from /proc (what psutil reads) of the server and its descendants,
// the median of `samples` readings over `settle` seconds. The report has
// loadgen_scenarios.py's shape.

import { readFileSync, readdirSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { plainDocument } from "./cohorts.mjs";
import { LoadgenError, livez, setUp } from "./graphql_http.mjs";
import { GraphqlWsSubscriber, closeSubscribers, openSubscribers } from "./subscribers.mjs";

export const MEMORY_MODES = ["shared", "separate", "connections", "shared-deflate"];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function parentOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name may hold spaces and parentheses: the fields follow the last ")".
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return null;
  }
}

function rssOf(pid) {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

// The resident bytes of `root` and every process below it (a server may fork workers).
export function treeRss(root) {
  const children = new Map();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const parent = parentOf(name);
    if (parent === null) continue;
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(Number(name));
  }
  let total = 0;
  const pending = [root];
  while (pending.length) {
    const pid = pending.pop();
    total += rssOf(pid);
    pending.push(...(children.get(pid) ?? []));
  }
  return total;
}

async function sampleRss(pid, settle, samples) {
  const readings = [];
  for (let index = 0; index < samples; index += 1) {
    await sleep((settle * 1000) / samples);
    readings.push(treeRss(pid));
  }
  readings.sort((a, b) => a - b);
  return readings[Math.floor(readings.length / 2)];
}

export async function runMemory(config) {
  const rss = () => sampleRss(config.serverPid, config.settle, config.samples);
  if (treeRss(config.serverPid) === 0)
    throw new LoadgenError(`cannot read the RSS of process ${config.serverPid} from /proc`);
  const session = await setUp(config.endpoint, config.seedMessages);
  const document = plainDocument(config.kind);
  let number = 0;
  const make = () => {
    const variables = { c: session.channelId };
    if (config.mode === "separate") variables.k = number;
    number += 1;
    return new GraphqlWsSubscriber({
      url: config.endpoint.wsUrl,
      token: session.token,
      document,
      variables,
      subscribe: config.mode !== "connections",
      ackTimeoutMs: config.connectTimeout * 1000,
    });
  };
  const openMore = (count) =>
    openSubscribers(count, make, {
      concurrency: config.concurrency,
      connectTimeoutMs: config.connectTimeout * 1000,
      readyTimeoutMs: config.readyTimeout * 1000,
    });

  // Warm-up: first-use allocations (schema caches, pools) are not per subscription.
  if (config.warmup) await closeSubscribers(await openMore(config.warmup), 10000);
  const baseline = await rss();
  const baselineStats = await livez(config.endpoint);
  const steps = [];
  const opened = [];
  let aborted = 0;
  let negotiated = 0;
  try {
    for (const size of config.sizes) {
      const started = performance.now();
      opened.push(...(await openMore(size - opened.length)));
      const openS = (performance.now() - started) / 1000;
      const reading = await rss();
      steps.push({
        subscriptions: size,
        rss_bytes: reading,
        delta_bytes: reading - baseline,
        per_subscription_kib: Math.round(((reading - baseline) / size / 1024) * 100) / 100,
        open_s: Math.round(openS * 100) / 100,
        livez: await livez(config.endpoint),
      });
    }
  } finally {
    negotiated = opened.filter((s) => s.negotiated.includes("permessage-deflate")).length;
    aborted = await closeSubscribers(opened, 20000);
  }
  const afterClose = await rss();
  const ended = opened.filter((s) => s.error);
  return {
    scenario: "memory",
    client: "npm",
    kind: config.kind,
    mode: config.mode,
    deflate: true,
    deflate_negotiated: negotiated,
    seed_messages: session.seeded,
    initial_frame_bytes: opened[0]?.initialBytes ?? 0,
    baseline_rss_bytes: baseline,
    baseline_livez: baselineStats,
    steps,
    rss_after_close_bytes: afterClose,
    subscriptions_ended: ended.length,
    first_end_reason: ended[0]?.error ?? null,
    close_aborted: aborted,
  };
}
