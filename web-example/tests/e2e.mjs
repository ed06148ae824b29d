// End to end: the built client, served by the real Python server, in Debian's
// Chromium driven by playwright-core. Two users of one workspace chat live;
// GraphiQL runs a live query with no internet. Screenshots and the server log go
// to web-example/test-artifacts/.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import { freePort, graphql, startServer, webRoot } from './server.mjs';
import { messageRows, PASSWORD, signUp as signUpAt, tokenOf } from './page.mjs';

const signUp = (page, user) => signUpAt(server.baseUrl, page, user);
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = join(webRoot, 'test-artifacts');
const UI_TIMEOUT_MS = 15_000;
/** How long to keep watching for a late second row after a send has settled. */
const LATE_PUSH_WINDOW_MS = 500;

const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

let server;
let browser;
/** The Vite dev server's origin, allowed by the backend (ALLOWED_ORIGINS). */
let devOrigin;
/** Every request to a host other than this machine; each is aborted. */
const offMachineRequests = [];

async function newGuardedContext() {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  context.setDefaultTimeout(UI_TIMEOUT_MS);
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (LOCAL_HOSTS.has(url.hostname)) return route.continue();
    offMachineRequests.push(url.href);
    return route.abort('internetdisconnected');
  });
  return context;
}

/** Pages open now, shot under failed-<test>-<n>.png when a test fails. */
const openPages = new Set();

/** A test whose failure leaves a screenshot of every open page. */
function browserTest(title, body) {
  const slug = title.toLowerCase().replace(/[^a-z0-9]+/g, '-').slice(0, 40);
  it(title, async () => {
    try {
      await body();
    } catch (error) {
      let n = 0;
      for (const page of openPages) {
        n += 1;
        await shot(page, `failed-${slug}-${n}`).catch(() => undefined);
      }
      throw error;
    }
  });
}

async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/**
 * Records, from now on, the most rows showing `body` at any one time and whether
 * the first such row was ever removed from the page (a remount would do that).
 */
async function watchRows(page, body) {
  await page.evaluate((text) => {
    const rows = () =>
      [...document.querySelectorAll('[data-testid="message"]')].filter(
        (row) => row.querySelector('[data-testid="message-body"]')?.textContent === text,
      );
    const watch = { maxRows: rows().length, first: rows()[0] ?? null, firstRemoved: false, sawPending: false };
    const check = () => {
      const now = rows();
      watch.maxRows = Math.max(watch.maxRows, now.length);
      if (now.some((row) => row.dataset.status === 'pending')) watch.sawPending = true;
      if (!watch.first && now[0]) watch.first = now[0];
      if (watch.first && !watch.first.isConnected) watch.firstRemoved = true;
    };
    new MutationObserver(check).observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
    window.__rowWatch = watch;
  }, body);
  return async () =>
    page.evaluate(() => {
      const { maxRows, firstRemoved, sawPending } = window.__rowWatch;
      return { maxRows, firstRemoved, sawPending };
    });
}

async function openChannel(page, name) {
  await page.getByTestId('channel-item').filter({ hasText: `# ${name}` }).click();
  await page.locator(`[data-testid="channel-view"][data-loaded="true"]`).waitFor();
  await page.locator('[data-testid="ws-status"][data-status="connected"]').waitFor();
}

/** Holds the page's sendMessage requests until the returned release() is awaited. */
async function holdSends(page) {
  let open;
  const gate = new Promise((done) => (open = done));
  const held = [];
  const handler = (route) => {
    const request = route.request();
    const isSend = request.method() === 'POST' && (request.postData() ?? '').includes('sendMessage');
    const handled = (isSend ? gate : Promise.resolve()).then(() => route.continue());
    held.push(handled);
    return handled;
  };
  await page.route('**/graphql', handler);
  return async () => {
    open();
    await Promise.all(held); // each held request goes on before the handler is removed
    await page.unroute('**/graphql', handler);
  };
}

describe('the web example in a real browser', { timeout: 300_000 }, () => {
  const alice = {};
  const bob = {};

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    // Failure shots of an earlier run would read as this run's.
    for (const name of readdirSync(ARTIFACTS)) {
      if (/^failed-.*\.png$/.test(name)) rmSync(join(ARTIFACTS, name));
    }
    devOrigin = `http://127.0.0.1:${await freePort()}`;
    server = await startServer({ logPath: join(ARTIFACTS, 'server.log'), extraOrigins: [devOrigin] });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    for (const user of [alice, bob]) {
      user.context = await newGuardedContext();
      user.page = await user.context.newPage();
      openPages.add(user.page);
      user.errors = [];
      user.page.on('pageerror', (error) => user.errors.push(String(error)));
      user.frames = [];
      user.page.on('websocket', (socket) => socket.on('framereceived', ({ payload }) => user.frames.push(String(payload))));
    }
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  browserTest('the first user signs up with a new workspace and creates a channel', async () => {
    await signUp(alice.page, { name: 'Alice', email: 'alice@example.com', workspaceName: 'Acme' });
    await alice.page.getByTestId('channel-name').fill('general');
    await alice.page.getByTestId('channel-create').click();
    // The live channel list shows the new channel by itself.
    await alice.page.getByTestId('channel-item').filter({ hasText: '# general' }).waitFor();
    await openChannel(alice.page, 'general');
    await shot(alice.page, '01-alice-signed-up');
  });

  browserTest('a second user joins the workspace with an invite code', async () => {
    await alice.page.getByTestId('invite-create').click();
    const code = (await alice.page.getByTestId('invite-code').textContent())?.trim();
    assert.ok(code, 'an invite code is shown');
    await signUp(bob.page, { name: 'Bob', email: 'bob@example.com', inviteCode: code });
    await openChannel(bob.page, 'general');
    await bob.page.evaluate(() => (window.__notReloaded = true));
    await shot(bob.page, '02-bob-joined');
  });

  browserTest('the sender sees a message at once; it settles in place and appears for the other user without reload', async () => {
    const body = 'Hello Bob, this is live!';
    const rowsSeen = await watchRows(alice.page, body);
    const release = await holdSends(alice.page);

    await alice.page.getByTestId('composer-input').fill(body);
    await alice.page.getByTestId('composer-send').click();
    // The request is held, so the server has not seen it: what shows is optimistic.
    await messageRows(alice.page, body).and(alice.page.locator('[data-status="pending"]')).waitFor({ timeout: 2_000 });
    assert.equal(await messageRows(bob.page, body).count(), 0);
    await shot(alice.page, '03-alice-pending');

    await release();
    await messageRows(alice.page, body).and(alice.page.locator('[data-status="sent"]')).waitFor();
    await messageRows(bob.page, body).waitFor();
    assert.equal(await bob.page.evaluate(() => window.__notReloaded), true, 'the page was not reloaded');

    // A negative check: give any late live push a moment to (wrongly) add a row.
    await alice.page.waitForTimeout(LATE_PUSH_WINDOW_MS);
    const seen = await rowsSeen();
    assert.equal(await messageRows(alice.page, body).count(), 1);
    assert.equal(seen.maxRows, 1, 'never two rows for one message');
    assert.equal(seen.firstRemoved, false, 'the pending row turned into the sent one in place');
    assert.equal(await messageRows(bob.page, body).count(), 1);
    await shot(alice.page, '04-alice-sent');
    await shot(bob.page, '05-bob-received');
  });

  browserTest('a send the server refuses is rolled back with a visible error', async () => {
    const body = 'x'.repeat(4001); // over the server's 4000-character limit
    const rowsSeen = await watchRows(alice.page, body);
    await alice.page.getByTestId('composer-input').fill(body);
    await alice.page.getByTestId('composer-send').click();

    const error = alice.page.getByTestId('send-error');
    await error.waitFor();
    assert.match(await error.textContent(), /BAD_USER_INPUT/);
    assert.equal(await messageRows(alice.page, body).count(), 0, 'the optimistic row is gone');
    assert.equal((await rowsSeen()).sawPending, true, 'it was shown optimistically first');
    assert.equal(await alice.page.getByTestId('composer-input').inputValue(), body, 'the text is given back');
    assert.equal(await messageRows(bob.page, body).count(), 0);
    await shot(alice.page, '06-send-rolled-back');
    await alice.page.getByTestId('composer-input').fill('');
  });

  browserTest('only the author can edit and delete, and the other user sees both live', async () => {
    const body = 'Hello Bob, this is live!';
    const bobRow = messageRows(bob.page, body);
    assert.equal(await bobRow.getByTestId('message-edit').count(), 0, 'no edit button on another user\'s message');
    assert.equal(await bobRow.getByTestId('message-delete').count(), 0, 'no delete button on another user\'s message');

    const aliceRow = messageRows(alice.page, body);
    await aliceRow.getByTestId('message-edit').click();
    await alice.page.getByTestId('message-edit-input').fill('Hello Bob (edited)');
    await alice.page.getByTestId('message-edit-save').click();
    await messageRows(bob.page, 'Hello Bob (edited)').waitFor();
    await shot(bob.page, '07-bob-sees-edit');

    await messageRows(alice.page, 'Hello Bob (edited)').getByTestId('message-delete').click();
    await messageRows(bob.page, 'Hello Bob (edited)').waitFor({ state: 'detached' });
    await messageRows(alice.page, 'Hello Bob (edited)').waitFor({ state: 'detached' });
  });

  browserTest('older messages load below the live page by cursor, newest first', async () => {
    const token = await tokenOf(alice.page);
    const { createChannel } = await graphql(
      server.graphqlUrl,
      'mutation($input: CreateChannelInput!) { createChannel(input: $input) { id } }',
      { input: { name: 'history' } },
      token,
    );
    const total = 55;
    for (let i = 1; i <= total; i += 1) {
      await graphql(
        server.graphqlUrl,
        'mutation($input: SendMessageInput!) { sendMessage(input: $input) { id } }',
        { input: { channelId: createChannel.id, body: `history ${i}` } },
        token,
      );
    }
    await openChannel(bob.page, 'history');
    const bodies = () => bob.page.getByTestId('message-body').allTextContents();
    await messageRows(bob.page, `history ${total}`).waitFor();
    assert.equal((await bodies()).length, 50, 'the live page holds 50');

    await bob.page.getByTestId('load-older').click();
    await messageRows(bob.page, 'history 1').waitFor();
    const expected = Array.from({ length: total }, (_, i) => `history ${total - i}`);
    assert.deepEqual(await bodies(), expected);
    assert.equal(await bob.page.getByTestId('load-older').count(), 0, 'nothing older is left');

    // A new message pushes one out of the live page: it stays shown, once.
    await graphql(
      server.graphqlUrl,
      'mutation($input: SendMessageInput!) { sendMessage(input: $input) { id } }',
      { input: { channelId: createChannel.id, body: 'history new' } },
      token,
    );
    await messageRows(bob.page, 'history new').waitFor();
    await bob.page.waitForFunction((n) => document.querySelectorAll('[data-testid="message"]').length === n, total + 1);
    assert.deepEqual(await bodies(), ['history new', ...expected]);
    // The live page's update came as a JSON patch (the client asks with livePatch): one
    // row added at the top and one removed at the bottom, not the page of 50 again.
    const update = bob.frames.find((text) => text.includes('"patch"') && text.includes('history new'));
    assert.ok(update, 'the new message came in a patch');
    const rows = JSON.parse(update).payload.patch.filter(({ path }) => path.startsWith('/messages/edges/'));
    assert.deepEqual(
      rows.map(({ op, path }) => [op, path]),
      [['add', '/messages/edges/0'], ['remove', '/messages/edges/50']],
    );
    await shot(bob.page, '08-older-pages');
  });

  browserTest('signing out and in again opens a new socket with the new token', async () => {
    const sockets = [];
    bob.page.on('websocket', (socket) => sockets.push(socket));
    await bob.page.getByTestId('sign-out').click();
    await bob.page.getByTestId('auth-screen').waitFor();
    await bob.page.getByTestId('signin-email').fill('bob@example.com');
    await bob.page.getByTestId('signin-password').fill(PASSWORD);
    await bob.page.getByTestId('signin-submit').click();
    await bob.page.getByTestId('chat-screen').waitFor();
    await openChannel(bob.page, 'general');
    assert.equal(sockets.length, 1, 'one new WebSocket after signing in');

    const token = await tokenOf(alice.page);
    const channelId = await bob.page.getByTestId('channel-view').getAttribute('data-channel-id');
    await graphql(
      server.graphqlUrl,
      'mutation($input: SendMessageInput!) { sendMessage(input: $input) { id } }',
      { input: { channelId, body: 'Welcome back, Bob' } },
      token,
    );
    await messageRows(bob.page, 'Welcome back, Bob').waitFor();
  });

  browserTest('GraphiQL loads with no internet and shows a live query updating after a mutation', async () => {
    const token = await tokenOf(alice.page);
    const context = await newGuardedContext();
    const page = await context.newPage();
    openPages.add(page);
    const sockets = [];
    page.on('websocket', (socket) => sockets.push(socket.url()));
    const query = 'query LiveChannels @live {\n  channels(first: 50) {\n    edges {\n      node {\n        name\n      }\n    }\n  }\n}\n';
    const loaded = await page.goto(`${server.baseUrl}/graphiql?query=${encodeURIComponent(query)}`);
    assert.equal(loaded?.status(), 200, 'the server serves dist/graphiql.html at /graphiql');
    await page.getByTestId('graphiql-token').fill(token);
    await page.getByTestId('graphiql-token-apply').click();
    await page.getByTestId('graphiql-token-state').filter({ hasText: 'token set' }).waitFor();

    // Run once the editor shows the query (GraphiQL sets its editors up asynchronously).
    await page.locator('.graphiql-query-editor').filter({ hasText: 'LiveChannels' }).waitFor();
    const response = page.locator('.graphiql-response');
    await page.locator('.graphiql-execute-button').click();
    await response.filter({ hasText: 'general' }).waitFor();
    await shot(page, '09-graphiql-live-query');

    await graphql(
      server.graphqlUrl,
      'mutation($input: CreateChannelInput!) { createChannel(input: $input) { id } }',
      { input: { name: 'from-graphiql-test' } },
      token,
    );
    await response.filter({ hasText: 'from-graphiql-test' }).waitFor();
    await shot(page, '10-graphiql-live-update');

    assert.ok(sockets.some((url) => new URL(url).pathname === '/graphql'), 'the live query ran over a WebSocket');

    // A browser's GET /graphql gets the same offline page, not the CDN one.
    const ide = await fetch(server.graphqlUrl, { headers: { accept: 'text/html' } });
    assert.equal(ide.status, 200);
    assert.equal(await ide.text(), readFileSync(join(webRoot, 'dist', 'graphiql.html'), 'utf8'));
    openPages.delete(page);
    await context.close();
  });

  browserTest('the Vite dev server proxies HTTP and WebSocket to the backend', async () => {
    // `npm run dev` as the README runs it: vite.config.ts, /graphql proxied to the
    // backend (here BACKEND_URL is the test server), the dev origin in ALLOWED_ORIGINS.
    const { createServer } = await import('vite');
    delete process.env.VITE_GRAPHQL_URL; // the proxy, not a direct URL from the caller's shell
    const dev = await createServer({
      configFile: join(webRoot, 'vite.config.ts'),
      root: webRoot,
      logLevel: 'warn',
      clearScreen: false,
      server: {
        host: '127.0.0.1',
        port: Number(new URL(devOrigin).port),
        strictPort: true,
        hmr: false,
        proxy: { '/graphql': { target: server.baseUrl, ws: true, changeOrigin: false } },
      },
    });
    const context = await newGuardedContext();
    try {
      await dev.listen();
      const page = await context.newPage();
      openPages.add(page);
      const errors = [];
      page.on('pageerror', (error) => errors.push(String(error)));
      await page.goto(`${devOrigin}/`);
      await page.getByTestId('signin-email').fill('bob@example.com');
      await page.getByTestId('signin-password').fill(PASSWORD);
      await page.getByTestId('signin-submit').click();
      await page.getByTestId('chat-screen').waitFor();
      await openChannel(page, 'general');

      // HTTP through the proxy (the mutation), the live page over the proxied socket.
      await page.getByTestId('composer-input').fill('Sent from the dev server');
      await page.getByTestId('composer-send').click();
      await messageRows(page, 'Sent from the dev server').and(page.locator('[data-status="sent"]')).waitFor();
      await messageRows(alice.page, 'Sent from the dev server').waitFor();
      await alice.page.getByTestId('composer-input').fill('Seen on the dev server');
      await alice.page.getByTestId('composer-send').click();
      await messageRows(page, 'Seen on the dev server').waitFor();
      await shot(page, '11-vite-dev-server');
      assert.deepEqual(errors, []);
      openPages.delete(page);
    } finally {
      await context.close();
      await dev.close();
    }
  });

  it('needed nothing from the internet and threw no page errors', () => {
    assert.deepEqual(offMachineRequests, []);
    assert.deepEqual(alice.errors, []);
    assert.deepEqual(bob.errors, []);
  });
});
