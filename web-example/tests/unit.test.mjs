// The client's pure core, without a browser: which operations stream over the
// socket, and how optimistic sends are matched to the live page.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parse } from 'graphql';
import { importTs } from './typescript.mjs';

const { isStreamed, isLiveQuery } = await importTs('src/graphql/live.ts');
const { reconcile } = await importTs('src/messages/reconcile.ts');

describe('isStreamed', () => {
  const streamed = (query, operationName, variables) => isStreamed(parse(query), operationName, variables);

  it('streams a query marked @live', () => {
    assert.equal(streamed('query Q @live { viewer { id } }'), true);
    assert.equal(streamed('query @live(throttle: 500) { viewer { id } }'), true);
  });

  it('streams subscriptions', () => {
    assert.equal(streamed('subscription { ticks }'), true);
  });

  it('does not stream plain queries, mutations, or @live(if: false)', () => {
    assert.equal(streamed('{ viewer { id } }'), false);
    assert.equal(streamed('mutation { createInvite { code } }'), false);
    assert.equal(streamed('query @live(if: false) { viewer { id } }'), false);
  });

  it('reads @live(if: $variable) from the variables', () => {
    const query = 'query Q($on: Boolean = true) @live(if: $on) { viewer { id } }';
    assert.equal(streamed(query, null, { on: true }), true);
    assert.equal(streamed(query, null, { on: false }), false);
  });

  it('looks at the operation that runs when a document has several', () => {
    const doc = 'query Live @live { viewer { id } } query Once { viewer { id } } fragment F on User { id }';
    assert.equal(streamed(doc, 'Live'), true);
    assert.equal(streamed(doc, 'Once'), false);
    assert.equal(streamed(doc, undefined), false, 'ambiguous without a name');
  });

  it('does not call a subscription a live query', () => {
    assert.equal(isLiveQuery(parse('subscription @live { ticks }')), false);
  });
});

describe('reconcile', () => {
  const viewer = 'u1';
  const message = (id, body, author = viewer) => ({ id, body, createdAt: '', editedAt: null, author: { id: author, name: '' } });
  const send = (key, body, { seen = [], serverId = null } = {}) => ({ key, body, createdAt: '', seenIds: new Set(seen), serverId });
  const keys = (sends) => sends.map((s) => s.key);

  it('keeps a send unconfirmed until the live page shows it', () => {
    const { unconfirmed, confirmedBy } = reconcile([send('k1', 'hi')], [message('1', 'old')], viewer);
    assert.deepEqual(keys(unconfirmed), ['k1']);
    assert.equal(confirmedBy.size, 0);
  });

  it('confirms a send by the id its mutation returned', () => {
    const { unconfirmed, confirmedBy } = reconcile([send('k1', 'hi', { serverId: '7' })], [message('7', 'edited already')], viewer);
    assert.deepEqual(keys(unconfirmed), []);
    assert.equal(confirmedBy.get('7'), 'k1');
  });

  it('confirms a send by content when the live page is ahead of the mutation', () => {
    const { unconfirmed, confirmedBy } = reconcile([send('k1', 'hi', { seen: ['1'] })], [message('2', 'hi'), message('1', 'old')], viewer);
    assert.deepEqual(keys(unconfirmed), []);
    assert.equal(confirmedBy.get('2'), 'k1');
  });

  it('never takes a message that was already there, or someone else\'s, for a send', () => {
    const live = [message('3', 'hi', 'u2'), message('1', 'hi')];
    const { unconfirmed } = reconcile([send('k1', 'hi', { seen: ['1'] })], live, viewer);
    assert.deepEqual(keys(unconfirmed), ['k1']);
  });

  it('matches two sends of the same text one message each, oldest first', () => {
    const sends = [send('k1', 'same'), send('k2', 'same')];
    const { unconfirmed, confirmedBy } = reconcile(sends, [message('5', 'same')], viewer);
    assert.equal(confirmedBy.get('5'), 'k1');
    assert.deepEqual(keys(unconfirmed), ['k2']);
  });

  it('does not let a content match steal the message a returned id names', () => {
    const sends = [send('k1', 'same'), send('k2', 'same', { serverId: '5' })];
    const { unconfirmed, confirmedBy } = reconcile(sends, [message('5', 'same')], viewer);
    assert.equal(confirmedBy.get('5'), 'k2');
    assert.deepEqual(keys(unconfirmed), ['k1']);
  });

  it('lists unconfirmed sends newest first, as the page is', () => {
    const { unconfirmed } = reconcile([send('k1', 'a'), send('k2', 'b')], [], viewer);
    assert.deepEqual(keys(unconfirmed), ['k2', 'k1']);
  });
});
