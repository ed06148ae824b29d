// End to end, in Debian's Chromium against the real Python server: who is typing and
// who is online between two users; "new messages while you were away" resuming from
// the cursor kept in localStorage (and starting over after CURSOR_EXPIRED); sending a
// message later (pending, cancelled, arriving on time); and a link preview of a page
// served on loopback. Screenshots go to web-example/test-artifacts/rt-*.png.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import { graphql, startServer, webRoot } from './server.mjs';
import { messageRows, openChannel, signUp as signUpAt, tokenOf } from './page.mjs';

const signUp = (page, user) => signUpAt(server.baseUrl, page, user);
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = join(webRoot, 'test-artifacts');
const UI_TIMEOUT_MS = 15_000;
/** Change-log entries the server keeps: small, so that a stored cursor can expire. */
const RETENTION = 50;
const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);
const PAGE_TITLE = 'Quarterly planning notes';

let server;
let browser;
/** A small web page on loopback for link previews. */
let site;
const offMachineRequests = [];
const openPages = new Set();

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

async function newPage(user) {
  user.page = await user.context.newPage();
  openPages.add(user.page);
  user.page.on('pageerror', (error) => user.errors.push(String(error)));
  return user.page;
}

async function closePage(user) {
  openPages.delete(user.page);
  await user.page.close();
}

function browserTest(title, body) {
  const slug = title.toLowerCase().replace(/[^a-z0-9]+/g, '-').slice(0, 40);
  it(title, async () => {
    try {
      await body();
    } catch (error) {
      let n = 0;
      for (const page of openPages) {
        n += 1;
        await shot(page, `failed-rt-${slug}-${n}`).catch(() => undefined);
      }
      throw error;
    }
  });
}

async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

const channelItem = (page, name) => page.getByTestId('channel-item').filter({ hasText: `# ${name}` });
const newCount = (page, name) => channelItem(page, name).getByTestId('new-count');
const onlineUser = (page, name) => page.getByTestId('online-user').filter({ hasText: name });
const typingShown = (page, text) => page.getByTestId('typing-indicator').filter({ hasText: text });
const noOneTyping = (page) => page.locator('[data-testid="typing-indicator"][data-count="0"]');
const scheduledItem = (page, body) =>
  page.getByTestId('scheduled-item').filter({ has: page.getByTestId('scheduled-body').filter({ hasText: body }) });

async function send(user, channelId, body) {
  await graphql(
    server.graphqlUrl,
    'mutation($input: SendMessageInput!) { sendMessage(input: $input) { id } }',
    { input: { channelId, body } },
    user.token,
  );
}

/** What the page keeps for a channel's "new while away" count: { cursor, count } or null. */
const storedMark = (user, channelId) =>
  user.page.evaluate((key) => JSON.parse(window.localStorage.getItem(key) ?? 'null'), `livegraph.away.${user.id}.${channelId}`);

async function waitForStoredMark(user, channelId, predicate, description) {
  const deadline = Date.now() + UI_TIMEOUT_MS;
  for (;;) {
    const mark = await storedMark(user, channelId);
    if (predicate(mark)) return mark;
    if (Date.now() > deadline) throw new Error(`stored mark never ${description}: ${JSON.stringify(mark)}`);
    await user.page.waitForTimeout(100); // polling interval, not a synchronisation point
  }
}

/** A `datetime-local` value `seconds` from now, in the page's own time zone. */
const inSeconds = (page, seconds) =>
  page.evaluate((s) => {
    const d = new Date(Date.now() + s * 1000);
    const pad = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }, seconds);

describe('typing, presence, away counts, scheduling and link previews in a real browser', { timeout: 300_000 }, () => {
  const alice = { name: 'Alice', email: 'alice@example.com', errors: [] };
  const bob = { name: 'Bob', email: 'bob@example.com', errors: [] };
  const channels = {};

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    for (const name of readdirSync(ARTIFACTS)) {
      if (/^failed-rt-.*\.png$/.test(name)) rmSync(join(ARTIFACTS, name));
    }
    site = createServer((request, response) => {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      response.end(`<!doctype html><html><head><title>${PAGE_TITLE}</title></head><body><p>Notes.</p></body></html>`);
    });
    await new Promise((done) => site.listen(0, '127.0.0.1', done));
    server = await startServer({
      logPath: join(ARTIFACTS, 'realtime-server.log'),
      env: { CHANGELOG_RETENTION: String(RETENTION) },
    });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    for (const user of [alice, bob]) {
      user.context = await newGuardedContext();
      await newPage(user);
    }
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    await new Promise((done) => (site ? site.close(done) : done()));
  });

  browserTest('two users of one workspace see each other online', async () => {
    await signUp(alice.page, { name: alice.name, email: alice.email, workspaceName: 'Acme' });
    for (const name of ['general', 'random']) {
      await alice.page.getByTestId('channel-name').fill(name);
      await alice.page.getByTestId('channel-create').click();
      await channelItem(alice.page, name).waitFor();
      channels[name] = await channelItem(alice.page, name).getAttribute('data-channel-id');
    }
    await openChannel(alice.page, 'general');
    await onlineUser(alice.page, 'Alice').waitFor();

    await alice.page.getByTestId('invite-create').click();
    const code = (await alice.page.getByTestId('invite-code').textContent())?.trim();
    await signUp(bob.page, { name: bob.name, email: bob.email, inviteCode: code });
    await openChannel(bob.page, 'general');

    await onlineUser(alice.page, 'Bob').waitFor();
    await onlineUser(bob.page, 'Alice').waitFor();
    await onlineUser(bob.page, 'Bob').filter({ hasText: '(you)' }).waitFor();
    for (const user of [alice, bob]) {
      user.token = await tokenOf(user.page);
      user.id = (await graphql(server.graphqlUrl, '{ viewer { id } }', {}, user.token)).viewer.id;
    }
    await shot(bob.page, 'rt-01-both-online');
  });

  browserTest('the other user sees who is typing, until they stop or send', async () => {
    const input = alice.page.getByTestId('composer-input');
    await input.pressSequentially('Hello B', { delay: 30 });
    await typingShown(bob.page, 'Alice is typing…').waitFor();
    await noOneTyping(alice.page).waitFor(); // not shown to the one typing
    await shot(bob.page, 'rt-02-bob-sees-alice-typing');

    // Stopping (leaving the box) takes it away.
    await input.blur();
    await noOneTyping(bob.page).waitFor();

    // Typing again shows it again; sending takes it away, and the message arrives.
    await input.pressSequentially('ob, typing now', { delay: 30 });
    await typingShown(bob.page, 'Alice is typing…').waitFor();
    await input.press('Enter');
    await messageRows(bob.page, 'Hello Bob, typing now').waitFor();
    await noOneTyping(bob.page).waitFor();
    await shot(bob.page, 'rt-03-typing-gone-after-send');
  });

  browserTest('messages in other channels count as new, also those sent while the page was closed', async () => {
    // Bob reads #random once: from that event on, the page keeps its cursor.
    await openChannel(bob.page, 'random');
    await send(alice, channels.random, 'random 1');
    await messageRows(bob.page, 'random 1').waitFor();
    const first = await waitForStoredMark(bob, channels.random, (m) => m?.cursor, 'had a cursor');
    assert.equal(first.count, 0, 'messages in the open channel are seen, not new');

    // While Bob is in #general, Alice's messages in #random are new to him.
    await openChannel(bob.page, 'general');
    await send(alice, channels.random, 'random 2');
    await send(alice, channels.random, 'random 3');
    await newCount(bob.page, 'random').filter({ hasText: '2 new' }).waitFor();
    assert.equal(await newCount(bob.page, 'random').getAttribute('title'), '2 new messages while you were away');
    assert.equal(await newCount(alice.page, 'random').count(), 0, 'one\'s own messages are not new');
    await waitForStoredMark(bob, channels.random, (m) => m?.count === 2, 'kept the count');
    await shot(bob.page, 'rt-04-two-new-in-random');

    // Bob closes the page: Alice sees him go offline (after the server's debounce).
    await closePage(bob);
    await onlineUser(alice.page, 'Bob').waitFor({ state: 'detached' });
    await shot(alice.page, 'rt-05-bob-offline');
    for (const n of [4, 5, 6]) await send(alice, channels.random, `random ${n}`);

    // Back again: the events he missed are replayed from the stored cursor.
    await newPage(bob);
    await bob.page.goto(`${server.baseUrl}/`);
    await bob.page.getByTestId('chat-screen').waitFor();
    await newCount(bob.page, 'random').filter({ hasText: '5 new' }).waitFor();
    await onlineUser(alice.page, 'Bob').waitFor();
    await shot(bob.page, 'rt-06-five-new-after-coming-back');

    await openChannel(bob.page, 'random');
    await newCount(bob.page, 'random').waitFor({ state: 'detached' });
    await messageRows(bob.page, 'random 6').waitFor();
    await waitForStoredMark(bob, channels.random, (m) => m?.count === 0, 'was read');
  });

  browserTest('a stored cursor the change log no longer holds starts the count over', async () => {
    await openChannel(bob.page, 'general');
    const stale = (await storedMark(bob, channels.random)).cursor;
    await closePage(bob);
    // More changes than the server keeps: Bob's cursor for #random falls out of the log.
    for (let n = 0; n < RETENTION + 10; n += 1) await send(alice, channels.general, `filler ${n}`);

    await newPage(bob);
    const refusals = [];
    bob.page.on('websocket', (socket) =>
      socket.on('framereceived', ({ payload }) => {
        if (String(payload).includes('CURSOR_EXPIRED')) refusals.push(String(payload));
      }),
    );
    await bob.page.goto(`${server.baseUrl}/`);
    await bob.page.getByTestId('chat-screen').waitFor();
    // CURSOR_EXPIRED: the stored cursor is dropped and #random is followed from now on.
    await waitForStoredMark(bob, channels.random, (m) => m && m.cursor === null, 'dropped its expired cursor');
    // The new subscription has no point to wait for: send until one counts (bounded).
    let sent = 0;
    while (!(await newCount(bob.page, 'random').isVisible())) {
      assert.ok(sent < 10, 'a message sent after the restart is counted');
      await send(alice, channels.random, `after expiry ${sent}`);
      sent += 1;
      await newCount(bob.page, 'random').waitFor({ timeout: 1_500 }).catch(() => undefined);
    }
    assert.ok(refusals.length > 0, 'the server refused the stored cursor with CURSOR_EXPIRED');
    const fresh = await waitForStoredMark(bob, channels.random, (m) => m?.cursor, 'had a new cursor');
    assert.notEqual(fresh.cursor, stale);
    await shot(bob.page, 'rt-07-count-after-expired-cursor');
    await openChannel(bob.page, 'random');
    await newCount(bob.page, 'random').waitFor({ state: 'detached' });
    await openChannel(bob.page, 'general');
  });

  browserTest('a message sent later: pending, cancelled, and one that arrives on time', async () => {
    const page = alice.page;
    const input = page.getByTestId('composer-input');

    await input.fill('Reminder for tomorrow');
    await page.getByTestId('schedule-at').fill(await inSeconds(page, 3600));
    await page.getByTestId('schedule-send').click();
    await scheduledItem(page, 'Reminder for tomorrow').and(page.locator('[data-status="PENDING"]')).waitFor();
    assert.equal(await input.inputValue(), '', 'the message box is emptied');

    await input.fill('Coffee in five seconds');
    await page.getByTestId('schedule-at').fill(await inSeconds(page, 5));
    await page.getByTestId('schedule-send').click();
    await scheduledItem(page, 'Coffee in five seconds').and(page.locator('[data-status="PENDING"]')).waitFor();
    assert.equal(await messageRows(bob.page, 'Coffee in five seconds').count(), 0, 'not sent yet');
    assert.equal(await bob.page.getByTestId('scheduled-item').count(), 0, 'only the author sees what is scheduled');
    await shot(page, 'rt-08-scheduled-pending');

    await scheduledItem(page, 'Reminder for tomorrow').getByTestId('scheduled-cancel').click();
    await scheduledItem(page, 'Reminder for tomorrow').and(page.locator('[data-status="CANCELLED"]')).waitFor();
    assert.equal(await scheduledItem(page, 'Reminder for tomorrow').getByTestId('scheduled-cancel').count(), 0);

    // On time, by the server's runner: it arrives for both and the list says SENT.
    await messageRows(bob.page, 'Coffee in five seconds').waitFor();
    await messageRows(page, 'Coffee in five seconds').waitFor();
    await scheduledItem(page, 'Coffee in five seconds').and(page.locator('[data-status="SENT"]')).waitFor();
    assert.equal(await messageRows(page, 'Reminder for tomorrow').count(), 0, 'the cancelled one is not sent');
    await shot(page, 'rt-09-scheduled-sent-and-cancelled');
  });

  browserTest('a link preview appears under a message', async () => {
    const { port } = site.address();
    const body = `Notes are at http://127.0.0.1:${port}/notes`;
    await alice.page.getByTestId('composer-input').fill(body);
    await alice.page.getByTestId('composer-send').click();
    for (const page of [alice.page, bob.page]) {
      const preview = messageRows(page, body).getByTestId('link-preview');
      await preview.filter({ hasText: PAGE_TITLE }).waitFor();
      assert.equal(await preview.getAttribute('href'), `http://127.0.0.1:${port}/notes`);
    }
    await shot(bob.page, 'rt-10-link-preview');
  });

  it('needed nothing from the internet and threw no page errors', () => {
    assert.deepEqual(offMachineRequests, []);
    assert.deepEqual(alice.errors, []);
    assert.deepEqual(bob.errors, []);
  });
});
