// What the browser tests do to the chat page, shared by every end-to-end suite.
import assert from 'node:assert/strict';

export const PASSWORD = 'correct-horse-battery-staple-42';
export const TOKEN_KEY = 'livegraph.token';

export function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The message rows whose body is exactly `body`. */
export const messageRows = (page, body) => page.locator('[data-testid="message"]').filter({
  has: page.locator('[data-testid="message-body"]', { hasText: new RegExp(`^${escapeRegExp(body)}$`) }),
});

export const tokenOf = (page) => page.evaluate((key) => window.localStorage.getItem(key), TOKEN_KEY);

/** Sign up through the form on `baseUrl`: a new workspace, or an invite code. */
export async function signUp(baseUrl, page, { name, email, workspaceName, inviteCode }) {
  await page.goto(`${baseUrl}/`);
  await page.getByTestId('signup-name').fill(name);
  await page.getByTestId('signup-email').fill(email);
  await page.getByTestId('signup-password').fill(PASSWORD);
  if (inviteCode) {
    await page.getByTestId('signup-mode-invite').check();
    await page.getByTestId('signup-invite').fill(inviteCode);
  } else {
    await page.getByTestId('signup-workspace').fill(workspaceName);
  }
  await page.getByTestId('signup-submit').click();
  await page.getByTestId('chat-screen').waitFor();
  assert.equal(await page.getByTestId('viewer-name').textContent(), name);
}

/** Open a channel from the list and wait until its live view is loaded and connected. */
export async function openChannel(page, name) {
  await page.getByTestId('channel-item').filter({ hasText: `# ${name}` }).click();
  await page.locator('[data-testid="channel-view"][data-loaded="true"]').waitFor();
  await page.locator('[data-testid="ws-status"][data-status="connected"]').waitFor();
}
