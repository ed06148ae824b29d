// Starts the real Python server on a free loopback port with a scratch SQLite
// database, serving the built client from dist/ (WEB_DIST).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const webRoot = resolve(fileURLToPath(new URL('..', import.meta.url)));
export const repoRoot = resolve(webRoot, '..');
const python = process.env.LIVEGRAPH_PYTHON ?? join(repoRoot, '.venv', 'bin', 'python');

export function freePort() {
  return new Promise((done, fail) => {
    const probe = createServer();
    probe.once('error', fail);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => done(port));
    });
  });
}

async function waitUntilServing(url, child, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let lastError = null;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the server exited with ${child.exitCode} before serving`);
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ __typename }' }),
        signal: AbortSignal.timeout(2_000),
      });
      if (response.ok) return;
      lastError = new Error(`HTTP ${response.status}`);
    } catch (error) {
      lastError = error;
    }
    await new Promise((wake) => setTimeout(wake, 200));
  }
  throw new Error(`the server did not answer at ${url} within ${timeoutMs} ms: ${lastError}`);
}

/**
 * Returns { baseUrl, graphqlUrl, wsUrl, stop() }. The server's output goes to `logPath`.
 * With `web` (the default) it also serves the built client, and fails at once with a
 * clear message when the client has not been built; `web: false` is the API alone.
 * `extraOrigins` are allowed besides the server's own (e.g. a Vite dev server's).
 * `env` adds or overrides server settings (e.g. a short CHANGELOG_RETENTION).
 */
export async function startServer({ logPath, startTimeoutMs = 60_000, web = true, extraOrigins = [], env: extraEnv = {} }) {
  const dist = join(webRoot, 'dist');
  if (web && (!existsSync(join(dist, 'index.html')) || !existsSync(join(dist, 'graphiql.html')))) {
    throw new Error('web-example/dist is missing: run `npm run build` first');
  }
  if (!existsSync(python)) throw new Error(`no Python at ${python} (set LIVEGRAPH_PYTHON)`);
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'livegraph-e2e-'));
  const log = createWriteStream(logPath);
  // A hermetic server: only the basics are inherited, so a DATABASE_URL, BROADCAST_URL,
  // PRODUCTION, PAGE_SIZE_* or WEB_DIST in the caller's environment changes nothing.
  const env = Object.fromEntries(
    ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TMPDIR', 'TZ'].filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]]),
  );
  const child = spawn(python, ['-m', 'app', 'serve', '--host', '127.0.0.1', '--port', String(port)], {
    cwd: repoRoot,
    env: {
      ...env,
      DATA_DIR: dataDir,
      DATABASE_URL: `sqlite+aiosqlite:///${join(dataDir, 'e2e.db')}`,
      BROADCAST_URL: 'memory://',
      SECRET_KEY: randomBytes(32).toString('hex'),
      ALLOWED_ORIGINS: [baseUrl, `http://localhost:${port}`, ...extraOrigins].join(','),
      ...(web ? { WEB_DIST: dist } : {}),
      // Link previews of pages the tests serve on loopback.
      LINK_PREVIEW_ALLOW_PRIVATE: '1',
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });
  const exited = new Promise((done) => child.once('exit', done));

  const stop = async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(killer);
    }
    log.end();
    rmSync(dataDir, { recursive: true, force: true });
  };

  try {
    await waitUntilServing(`${baseUrl}/graphql`, child, startTimeoutMs);
  } catch (error) {
    await stop();
    throw new Error(`${error.message} (server log: ${logPath})`);
  }
  return { baseUrl, graphqlUrl: `${baseUrl}/graphql`, wsUrl: `ws://127.0.0.1:${port}/graphql`, stop };
}

/** A GraphQL request over HTTP from Node, as another client of the same server. */
export async function graphql(url, query, variables = {}, token = null) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(10_000),
  });
  const result = await response.json();
  if (result.errors?.length) throw new Error(`GraphQL errors: ${JSON.stringify(result.errors)}`);
  return result.data;
}
