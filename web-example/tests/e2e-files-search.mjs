// End to end: attachments (upload with progress, thumbnails, download links) and the
// live search box, with the built client served by the real Python server in
// Debian's Chromium driven by playwright-core. Two users in two browser contexts.
// Screenshots and the server log go to web-example/test-artifacts/.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import { graphql, startServer, webRoot } from './server.mjs';
import { messageRows, openChannel, signUp as signUpAt, tokenOf } from './page.mjs';

const signUp = (page, user) => signUpAt(server.baseUrl, page, user);
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = join(webRoot, 'test-artifacts');
const UI_TIMEOUT_MS = 15_000;
/** The server's default MAX_UPLOAD_BYTES (25 MiB). */
const MAX_UPLOAD_BYTES = 25 * 1024 * 1024;
const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

let server;
let browser;
let scratch;
const offMachineRequests = [];
const openPages = new Set();

async function newGuardedContext() {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 }, acceptDownloads: true });
  context.setDefaultTimeout(UI_TIMEOUT_MS);
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (LOCAL_HOSTS.has(url.hostname)) return route.continue();
    offMachineRequests.push(url.href);
    return route.abort('internetdisconnected');
  });
  return context;
}

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
        await shot(page, `failed-files-search-${slug}-${n}`).catch(() => undefined);
      }
      throw error;
    }
  });
}

async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

// --- a real PNG, built here: 96x64 pixels, a two-colour gradient ---------------------

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const typed = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typed));
  return Buffer.concat([length, typed, crc]);
}

function makePng(width, height) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // RGB
  const rows = [];
  for (let y = 0; y < height; y += 1) {
    const row = [0]; // filter: none
    for (let x = 0; x < width; x += 1) row.push(59 + 2 * x, 91 + y, 219 - 3 * y);
    rows.push(Buffer.from(row));
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', header),
    pngChunk('IDAT', deflateSync(Buffer.concat(rows))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Records every percentage each upload row's progress bar shows, from now on. */
async function watchProgress(page) {
  await page.evaluate(() => {
    const seen = {};
    const record = () => {
      for (const row of document.querySelectorAll('[data-testid="upload"]')) {
        const bar = row.querySelector('[data-testid="upload-progress"]');
        if (!bar) continue;
        const values = (seen[row.dataset.name] ??= []);
        const percent = Number(bar.dataset.percent);
        if (values[values.length - 1] !== percent) values.push(percent);
      }
    };
    new MutationObserver(record).observe(document.body, { subtree: true, childList: true, attributes: true });
    window.__progress = seen;
  });
  return () => page.evaluate(() => window.__progress);
}

/** Waits until the search box shows the settled results of exactly `query`. */
async function searchFor(page, query) {
  await page.getByTestId('search-input').fill(query);
  await page.waitForFunction(
    (expected) => {
      const panel = document.querySelector('[data-testid="search-panel"]');
      return panel?.dataset.state === 'done' && panel.dataset.query === expected;
    },
    query.trim(),
    { timeout: UI_TIMEOUT_MS },
  );
}

const resultBodies = (page) => page.getByTestId('search-result-body').allTextContents();

describe('attachments and live search in a real browser', { timeout: 300_000 }, () => {
  const alice = {};
  const bob = {};
  const channels = {};
  const png = makePng(96, 64);
  const text = 'Agenda\n1. attachments\n2. search\n';

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    // This file's failure shots of an earlier run (those of e2e.mjs are its own).
    for (const name of readdirSync(ARTIFACTS)) {
      if (/^failed-files-search-.*\.png$/.test(name)) rmSync(join(ARTIFACTS, name));
    }
    scratch = mkdtempSync(join(tmpdir(), 'livegraph-files-e2e-'));
    server = await startServer({ logPath: join(ARTIFACTS, 'files-search-server.log') });
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
    }
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  browserTest('two users of one workspace, two channels', async () => {
    await signUp(alice.page, { name: 'Alice', email: 'alice@example.com', workspaceName: 'Files & Search' });
    const token = await tokenOf(alice.page);
    for (const name of ['general', 'random']) {
      const { createChannel } = await graphql(
        server.graphqlUrl,
        'mutation($input: CreateChannelInput!) { createChannel(input: $input) { id } }',
        { input: { name } },
        token,
      );
      channels[name] = createChannel.id;
    }
    await alice.page.getByTestId('invite-create').click();
    const code = (await alice.page.getByTestId('invite-code').textContent())?.trim();
    assert.ok(code, 'an invite code is shown');
    await signUp(bob.page, { name: 'Bob', email: 'bob@example.com', inviteCode: code });
    await openChannel(alice.page, 'general');
    await openChannel(bob.page, 'general');
  });

  browserTest('a PNG and a text file upload with progress; the other user sees a thumbnail and a download link', async () => {
    const progress = await watchProgress(alice.page);
    await alice.page.getByTestId('attach-input').setInputFiles([
      { name: 'gradient.png', mimeType: 'image/png', buffer: png },
      { name: 'agenda.txt', mimeType: 'text/plain', buffer: Buffer.from(text) },
    ]);
    await alice.page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('[data-testid="upload"]')];
      return rows.length === 2 && rows.every((row) => row.dataset.status === 'done');
    });
    const seen = await progress();
    console.log(`progress seen: ${JSON.stringify(seen)}`);
    for (const name of ['gradient.png', 'agenda.txt']) {
      const values = seen[name] ?? [];
      assert.equal(values[values.length - 1], 100, `${name}: the progress bar reached 100% (saw ${values})`);
      assert.deepEqual(values, [...values].sort((a, b) => a - b), `${name}: progress never went back`);
      const bar = alice.page.locator(`[data-testid="upload"][data-name="${name}"] [data-testid="upload-progress"]`);
      assert.equal(await bar.evaluate((el) => el.value), 100);
    }
    await shot(alice.page, 'files-01-uploads-ready');

    const body = 'Here are the agenda and the picture';
    await alice.page.getByTestId('composer-input').fill(body);
    await alice.page.getByTestId('composer-send').click();
    const aliceRow = messageRows(alice.page, body).and(alice.page.locator('[data-status="sent"]'));
    await aliceRow.getByTestId('attachment').nth(1).waitFor();
    // The composer lets its files go on the mutation's answer, which follows the live
    // update that shows the message (read-your-writes): wait for it, then check.
    await alice.page
      .waitForFunction(() => document.querySelectorAll('[data-testid="upload"]').length === 0, null, { timeout: 5000 })
      .catch(() => {});
    assert.equal(await alice.page.getByTestId('upload').count(), 0, 'the sent files left the composer');

    // Bob, in another browser context, sees both live.
    const bobRow = messageRows(bob.page, body);
    const image = bobRow.getByTestId('attachment-image');
    await image.waitFor();
    await image.evaluate((img) => (img.complete && img.naturalWidth > 0 ? null : new Promise((done, fail) => {
      img.addEventListener('load', done, { once: true });
      img.addEventListener('error', () => fail(new Error('the thumbnail did not load')), { once: true });
    })));
    assert.deepEqual(await image.evaluate((img) => [img.naturalWidth, img.naturalHeight]), [96, 64]);
    assert.equal(await image.getAttribute('alt'), 'gradient.png');
    const imageBytes = await (await bob.page.request.get(await image.getAttribute('src'))).body();
    assert.ok(imageBytes.equals(png), 'the thumbnail is the uploaded PNG');

    const link = bobRow.getByTestId('attachment-link');
    assert.equal(await link.getByTestId('attachment-name').textContent(), 'agenda.txt');
    assert.equal(await link.getByTestId('attachment-size').textContent(), `(${Buffer.byteLength(text)} B)`);
    await shot(bob.page, 'files-02-bob-sees-attachments');

    const [download] = await Promise.all([bob.page.waitForEvent('download'), link.click()]);
    assert.equal(download.suggestedFilename(), 'agenda.txt');
    assert.equal(readFileSync(await download.path(), 'utf8'), text, 'the download link returns the file');
  });

  browserTest('a larger upload on a slow link moves its progress bar step by step', async () => {
    // Chromium's own network throttling (DevTools protocol) slows the upload body.
    const cdp = await alice.context.newCDPSession(alice.page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: 0,
      downloadThroughput: -1,
      uploadThroughput: 1024 * 1024, // bytes per second
    });
    try {
      const progress = await watchProgress(alice.page);
      const bytes = Buffer.alloc(1536 * 1024, 0x61);
      await alice.page.getByTestId('attach-input').setInputFiles({ name: 'slow.bin', mimeType: 'application/octet-stream', buffer: bytes });
      const row = alice.page.locator('[data-testid="upload"][data-name="slow.bin"]');
      await alice.page.waitForFunction(() => {
        const percent = Number(document.querySelector('[data-testid="upload"][data-name="slow.bin"] [data-testid="upload-progress"]')?.dataset.percent);
        return percent >= 30 && percent < 100;
      });
      await shot(alice.page, 'files-00-upload-in-progress');
      await row.and(alice.page.locator('[data-status="done"]')).waitFor();
      const values = (await progress())['slow.bin'] ?? [];
      console.log(`progress seen (slow.bin): ${JSON.stringify(values)}`);
      assert.equal(values[values.length - 1], 100);
      assert.ok(values.some((v) => v > 0 && v < 100), `intermediate progress was shown (saw ${values})`);
      assert.deepEqual(values, [...values].sort((a, b) => a - b), 'progress never went back');
      await row.getByTestId('upload-remove').click();
    } finally {
      await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
      await cdp.detach();
    }
  });

  browserTest('a failed upload and a file over the size limit show errors; the typed message is kept', async () => {
    const draft = 'This text must survive the failed uploads';
    await alice.page.getByTestId('composer-input').fill(draft);

    // The upload request dies on the way: the XMLHttpRequest reports an error.
    const dropUpload = (route) => route.abort('connectionreset');
    await alice.page.route('**/files/upload/**', dropUpload);
    await alice.page.getByTestId('attach-input').setInputFiles({ name: 'lost.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(2048, 7) });
    const lost = alice.page.locator('[data-testid="upload"][data-name="lost.bin"]');
    await lost.and(alice.page.locator('[data-status="failed"]')).waitFor();
    assert.match(await lost.getByTestId('upload-error').textContent(), /Upload failed/);
    await alice.page.unroute('**/files/upload/**', dropUpload);

    // One byte over the server's maximum: createUploadUrl refuses it, nothing is sent.
    const huge = join(scratch, 'huge.bin');
    writeFileSync(huge, '');
    truncateSync(huge, MAX_UPLOAD_BYTES + 1);
    await alice.page.getByTestId('attach-input').setInputFiles(huge);
    const tooBig = alice.page.locator('[data-testid="upload"][data-name="huge.bin"]');
    await tooBig.and(alice.page.locator('[data-status="failed"]')).waitFor();
    assert.match(await tooBig.getByTestId('upload-error').textContent(), /BAD_USER_INPUT/);

    assert.equal(await alice.page.getByTestId('composer-input').inputValue(), draft, 'the typed message is kept');
    await shot(alice.page, 'files-03-upload-errors');

    // Dismissed, the message goes out as typed.
    await lost.getByTestId('upload-remove').click();
    await tooBig.getByTestId('upload-remove').click();
    await alice.page.getByTestId('composer-send').click();
    await messageRows(alice.page, draft).and(alice.page.locator('[data-status="sent"]')).waitFor();
    await messageRows(bob.page, draft).waitFor();
    assert.equal(await messageRows(bob.page, draft).getByTestId('attachment').count(), 0);
  });

  browserTest('a search finds messages across channels and shows a new match live', async () => {
    const token = await tokenOf(alice.page);
    const send = (channel, body) =>
      graphql(
        server.graphqlUrl,
        'mutation($input: SendMessageInput!) { sendMessage(input: $input) { id } }',
        { input: { channelId: channels[channel], body } },
        token,
      );
    await send('general', 'The quokka is a small marsupial');
    await send('random', 'Photos of a quokka family on the island');
    await send('random', 'Nothing to see here');

    await alice.page.evaluate(() => (window.__notReloaded = true));
    await searchFor(alice.page, 'quokka');
    assert.equal(await alice.page.getByTestId('search-result').count(), 2);
    const channelsShown = await alice.page.getByTestId('search-result-channel').allTextContents();
    assert.deepEqual(channelsShown.sort(), ['# general', '# random']);
    assert.deepEqual(
      (await resultBodies(alice.page)).sort(),
      ['Photos of a quokka family on the island', 'The quokka is a small marsupial'],
    );

    // Bob posts a match in the other channel; Alice's results grow by themselves.
    await openChannel(bob.page, 'random');
    await bob.page.getByTestId('composer-input').fill('Another quokka sighting near the ferry');
    await bob.page.getByTestId('composer-send').click();
    const live = alice.page.getByTestId('search-result').filter({ hasText: 'Another quokka sighting near the ferry' });
    await live.waitFor();
    assert.equal(await live.getByTestId('search-result-channel').textContent(), '# random');
    assert.equal(await alice.page.getByTestId('search-result').count(), 3);
    assert.equal(await alice.page.evaluate(() => window.__notReloaded), true, 'the page was not reloaded');
    await shot(alice.page, 'search-01-live-results');

    // The last word matches as a prefix.
    await searchFor(alice.page, 'quok');
    assert.equal(await alice.page.getByTestId('search-result').count(), 3);

    // A result opens its channel.
    await live.click();
    await alice.page.locator(`[data-testid="channel-view"][data-channel-id="${channels.random}"][data-loaded="true"]`).waitFor();
    await messageRows(alice.page, 'Another quokka sighting near the ferry').waitFor();
  });

  browserTest('hostile search text shows no error', async () => {
    const hostile = [
      '"quokka',
      'quokka*',
      '(quokka',
      'quokka)',
      '"(*)"',
      'NEAR(quokka',
      'body:quokka',
      'quokka OR -marsupial',
      "'; DROP TABLE message; --",
      '***',
      '"',
      ')(',
    ];
    for (const query of hostile) {
      await searchFor(alice.page, query);
      assert.equal(await alice.page.getByTestId('search-error').count(), 0, `no error for ${query}`);
      if (/quokka/.test(query) && !/OR|:/.test(query)) {
        assert.ok((await alice.page.getByTestId('search-result').count()) >= 1, `${query} searches for its words`);
      }
    }
    await searchFor(alice.page, 'NEAR(quokka');
    await shot(alice.page, 'search-02-hostile-text');
  });

  it('needed nothing from the internet and threw no page errors', () => {
    assert.deepEqual(offMachineRequests, []);
    assert.deepEqual(alice.errors, []);
    assert.deepEqual(bob.errors, []);
  });
});
