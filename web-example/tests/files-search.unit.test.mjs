// Pure helpers of the attachments and search UI, without a browser.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { importTs } from './typescript.mjs';

const { formatSize } = await importTs('src/files/formatSize.ts');
const { highlightRanges } = await importTs('src/search/highlightRanges.ts');

describe('formatSize', () => {
  it('reads as a person reads it', () => {
    assert.equal(formatSize(0), '0 B');
    assert.equal(formatSize(1023), '1023 B');
    assert.equal(formatSize(1536), '1.5 KB');
    assert.equal(formatSize(25 * 1024 * 1024), '25 MB');
    assert.equal(formatSize(3 * 1024 ** 3), '3.0 GB');
  });
});

describe('highlightRanges', () => {
  const marked = (text, query) => highlightRanges(text, query).filter((p) => p.marked).map((p) => p.text);
  const joined = (text, query) => highlightRanges(text, query).map((p) => p.text).join('');

  it('marks words and prefixes at word starts, case-insensitively', () => {
    assert.deepEqual(marked('The Quokka and a quokkas', 'quokka'), ['Quokka', 'quokka']);
    assert.deepEqual(marked('hello world', 'wor hel'), ['hel', 'wor']);
    assert.deepEqual(marked('unquokka', 'quokka'), [], 'not inside a word');
  });

  it('takes any query text without throwing, and never loses text', () => {
    const text = 'a (quokka) said "hi*" near: the [ferry]';
    for (const query of ['"', '*', '(', ')(', '[', '\\', '$^.+?{}|', 'NEAR(quokka', "'; --", '', '   ', 'ferry]']) {
      assert.equal(joined(text, query), text, query);
    }
    assert.deepEqual(marked(text, 'NEAR(quokka'), ['quokka', 'near']);
    assert.deepEqual(highlightRanges('', 'x'), [{ text: '', marked: false }]);
  });
});
