// The pure parts of typing, presence and "new while you were away", without a browser.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { importTs } from './typescript.mjs';

const { applyTyping, typingLabel, TypingSignal } = await importTs('src/presence/typingState.ts');
const { afterCursorError, applyEvent, loadMark, markRead, saveMark, NO_MARK } = await importTs('src/away/awayCounts.ts');

describe('who is typing', () => {
  const alice = { id: 'a', name: 'Alice' };
  const bob = { id: 'b', name: 'Bob' };
  const carol = { id: 'c', name: 'Carol' };

  it('adds on true, removes on false, and leaves the viewer out', () => {
    let list = [];
    list = applyTyping(list, { typing: true, user: alice }, 'b');
    list = applyTyping(list, { typing: true, user: bob }, 'b');
    list = applyTyping(list, { typing: true, user: alice }, 'b');
    assert.deepEqual(list, [alice]);
    assert.equal(typingLabel(list), 'Alice is typing…');
    list = applyTyping(list, { typing: false, user: alice }, 'b');
    assert.deepEqual(list, []);
    assert.equal(typingLabel(list), '');
  });

  it('names two, three, then counts the rest', () => {
    assert.equal(typingLabel([alice, bob]), 'Alice and Bob are typing…');
    assert.equal(typingLabel([alice, bob, carol]), 'Alice, Bob and Carol are typing…');
    assert.equal(typingLabel([alice, bob, carol, { id: 'd', name: 'Dan' }]), 'Alice, Bob and 2 others are typing…');
  });
});

describe('TypingSignal', () => {
  function fakeTimers() {
    const timers = { t: 0, pending: new Map(), next: 1 };
    return {
      timers,
      api: {
        now: () => timers.t,
        setTimeout: (run, ms) => {
          const id = timers.next++;
          timers.pending.set(id, { run, at: timers.t + ms });
          return id;
        },
        clearTimeout: (id) => timers.pending.delete(id),
      },
      /** Moves the clock on, running each timer at its due time. */
      advance(ms) {
        const end = timers.t + ms;
        for (;;) {
          const due = [...timers.pending].filter(([, timer]) => timer.at <= end).sort((x, y) => x[1].at - y[1].at)[0];
          if (!due) break;
          timers.pending.delete(due[0]);
          timers.t = due[1].at;
          due[1].run();
        }
        timers.t = end;
      },
    };
  }

  it('sends true once, renews every 2 s while typing, false after 4 s idle', () => {
    const sent = [];
    const clock = fakeTimers();
    const signal = new TypingSignal((typing) => sent.push([clock.timers.t, typing]), clock.api);
    for (let i = 0; i < 10; i += 1) {
      signal.input(false);
      clock.advance(500);
    }
    assert.deepEqual(sent, [[0, true], [2000, true], [4000, true]]);
    clock.advance(4000);
    assert.deepEqual(sent.at(-1), [8500, false]);
    assert.equal(sent.length, 4);
  });

  it('stops on send or blur once, and when the box is emptied', () => {
    const sent = [];
    const clock = fakeTimers();
    const signal = new TypingSignal((typing) => sent.push(typing), clock.api);
    signal.stop();
    assert.deepEqual(sent, [], 'nothing to stop');
    signal.input(false);
    signal.stop();
    signal.stop();
    assert.deepEqual(sent, [true, false]);
    signal.input(false);
    signal.input(true);
    assert.deepEqual(sent, [true, false, true, false]);
    clock.advance(10_000);
    assert.equal(sent.length, 4, 'no idle false after a stop');
  });
});

describe('new messages while away', () => {
  const created = (id, author, cursor) => ({ kind: 'CREATED', cursor, messageId: id, message: { id, author: { id: author } } });

  it('counts messages by others in a channel that is not open, and always moves the cursor', () => {
    let mark = NO_MARK;
    mark = applyEvent(mark, created('1', 'alice', 'c1'), { open: false, viewerId: 'bob' });
    mark = applyEvent(mark, created('2', 'bob', 'c2'), { open: false, viewerId: 'bob' });
    mark = applyEvent(mark, { kind: 'UPDATED', cursor: 'c3', messageId: '1', message: created('1', 'alice').message }, { open: false, viewerId: 'bob' });
    mark = applyEvent(mark, { kind: 'CREATED', cursor: 'c4', messageId: '3', message: null }, { open: false, viewerId: 'bob' });
    mark = applyEvent(mark, created('4', 'alice', 'c5'), { open: true, viewerId: 'bob' });
    mark = applyEvent(mark, created('1', 'alice', 'c1'), { open: false, viewerId: 'bob', repeat: true });
    assert.deepEqual(mark, { cursor: 'c1', count: 1 });
    assert.deepEqual(markRead(mark), { cursor: 'c1', count: 0 });
  });

  it('stores and loads a mark, and reads anything broken as nothing', () => {
    const data = new Map();
    const storage = { getItem: (k) => data.get(k) ?? null, setItem: (k, v) => data.set(k, v) };
    saveMark(storage, 'k', { cursor: 'c9', count: 3 });
    assert.deepEqual(loadMark(storage, 'k'), { cursor: 'c9', count: 3 });
    assert.deepEqual(loadMark(storage, 'missing'), NO_MARK);
    for (const broken of ['{', 'null', '"x"', '{"cursor":5,"count":-1}']) {
      data.set('k', broken);
      assert.deepEqual(loadMark(storage, 'k'), NO_MARK, broken);
    }
  });

  it('drops a cursor the server refuses and keeps the count', () => {
    const mark = { cursor: 'old', count: 2 };
    assert.deepEqual(afterCursorError(mark, 'CURSOR_EXPIRED'), { cursor: null, count: 2 });
    assert.deepEqual(afterCursorError(mark, 'BAD_USER_INPUT'), { cursor: null, count: 2 });
    assert.equal(afterCursorError(mark, 'UNAUTHENTICATED'), null);
    assert.equal(afterCursorError(mark, undefined), null);
  });
});
