// Load generator on the npm graphql-ws client (one `ws` WebSocket per subscriber,
// permessage-deflate offered as `ws` does by default), for the fan-out and memory
// scenarios. Same options and same JSON report as bench/loadgen.py, so that
// bench/fanout.py and bench/memory.py run either (`--client lean|npm`):
//
//   node bench/npm_client/loadgen.mjs fanout --kind live --url http://127.0.0.1:8000/graphql \
//       --subscribers 1000 --rounds 3 [--cohorts 200] [--users 50] --json-out result.json
//   node bench/npm_client/loadgen.mjs memory --kind live --url URL --server-pid P \
//       --sizes 1000,5000 --mode shared|separate|connections|shared-deflate
//
// Kinds: `live` (ours, the Node peer), `subscription` (the Python peer), `floor`
// (bare `ws` sockets; the write is the floor's POST /trigger). Every wait is bounded;
// targets must be on loopback.

import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { whyNot } from "./cohorts.mjs";
import { runFanout } from "./fanout.mjs";
import { Endpoint, LoadgenError } from "./graphql_http.mjs";
import { MEMORY_MODES, runMemory } from "./memory.mjs";

const KINDS = ["live", "subscription", "floor"];
const MAX_SUBSCRIBERS = 20000;
const PAGE_SIZE = 50;

const COMMON = {
  kind: { type: "string" },
  url: { type: "string" },
  "json-out": { type: "string", default: "-" },
  concurrency: { type: "string", default: "100" },
  "connect-timeout": { type: "string", default: "30" },
  "ready-timeout": { type: "string", default: "180" },
};
const SCENARIOS = {
  fanout: {
    subscribers: { type: "string", default: "100" },
    rounds: { type: "string", default: "3" },
    "seed-messages": { type: "string", default: "20" },
    "round-timeout": { type: "string", default: "60" },
    settle: { type: "string", default: "0.5" },
    cohorts: { type: "string", default: "1" },
    users: { type: "string", default: "1" },
  },
  memory: {
    sizes: { type: "string", default: "1000,5000" },
    mode: { type: "string", default: "shared" },
    "seed-messages": { type: "string", default: "20" },
    settle: { type: "string", default: "3" },
    samples: { type: "string", default: "5" },
    warmup: { type: "string", default: "50" },
    "server-pid": { type: "string" },
  },
};

function usage(message) {
  throw new LoadgenError(`usage: loadgen.mjs fanout|memory --kind KIND --url URL ...: ${message}`);
}

function number(values, name, { min = -Infinity, max = Infinity, integer = true } = {}) {
  const value = Number(values[name]);
  if (
    !Number.isFinite(value) ||
    (integer && !Number.isInteger(value)) ||
    value < min ||
    value > max
  )
    usage(`--${name} must be ${integer ? "a whole number" : "a number"} in ${min}..${max}`);
  return value;
}

export function parse(argv) {
  const scenario = argv[0];
  if (!(scenario in SCENARIOS)) usage(`unknown scenario ${scenario}`);
  const { values } = parseArgs({
    args: argv.slice(1),
    options: { ...COMMON, ...SCENARIOS[scenario] },
    strict: true,
  });
  if (!KINDS.includes(values.kind)) usage(`--kind must be one of ${KINDS.join(", ")}`);
  if (!values.url) usage("--url is required");
  const config = {
    scenario,
    kind: values.kind,
    endpoint: new Endpoint(values.url),
    jsonOut: values["json-out"],
    concurrency: number(values, "concurrency", { min: 1, max: 10000 }),
    connectTimeout: number(values, "connect-timeout", { min: 0, integer: false }),
    readyTimeout: number(values, "ready-timeout", { min: 0, integer: false }),
    seedMessages: number(values, "seed-messages", { min: 0, max: PAGE_SIZE }),
    settle: number(values, "settle", { min: 0, max: 600, integer: false }),
  };
  return scenario === "fanout" ? fanoutConfig(config, values) : memoryConfig(config, values);
}

function fanoutConfig(config, values) {
  Object.assign(config, {
    subscribers: number(values, "subscribers", { min: 1, max: MAX_SUBSCRIBERS }),
    rounds: number(values, "rounds", { min: 1, max: 100 }),
    roundTimeout: number(values, "round-timeout", { min: 0, integer: false }),
    cohorts: number(values, "cohorts", { min: 1 }),
    users: number(values, "users", { min: 1 }),
  });
  const reason = whyNot(config.kind, config.cohorts, config.users, config.subscribers);
  if (reason)
    usage(`--cohorts ${config.cohorts} --users ${config.users} on ${config.kind}: ${reason}`);
  return config;
}

function memoryConfig(config, values) {
  const sizes = values.sizes
    .split(",")
    .filter((s) => s.trim())
    .map(Number);
  const ascending = sizes.every(
    (size, i) => Number.isInteger(size) && (i === 0 || size > sizes[i - 1]),
  );
  if (!sizes.length || !ascending || sizes[0] < 1 || sizes.at(-1) > MAX_SUBSCRIBERS)
    usage(`--sizes must be ascending and distinct, in 1..${MAX_SUBSCRIBERS}`);
  if (!MEMORY_MODES.includes(values.mode))
    usage(`--mode must be one of ${MEMORY_MODES.join(", ")}`);
  if (config.kind === "floor") usage("memory runs against live or subscription targets");
  if (!values["server-pid"]) usage("memory needs --server-pid");
  return Object.assign(config, {
    sizes,
    mode: values.mode,
    samples: number(values, "samples", { min: 1, max: 100 }),
    warmup: number(values, "warmup", { min: 0, max: MAX_SUBSCRIBERS }),
    serverPid: number(values, "server-pid", { min: 1 }),
  });
}

async function main() {
  const config = parse(process.argv.slice(2));
  const report = config.scenario === "fanout" ? await runFanout(config) : await runMemory(config);
  const text = JSON.stringify(report, null, 2);
  if (config.jsonOut === "-") console.log(text);
  else writeFileSync(config.jsonOut, `${text}\n`, "utf8");
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error instanceof LoadgenError ? error.message : error);
    process.exit(1);
  },
);
