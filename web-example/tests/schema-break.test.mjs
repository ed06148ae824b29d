// A server schema change that breaks a client operation must fail `npm run typecheck`.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkSchemaBreak } from '../scripts/check-schema-break.mjs';

test('a breaking server schema change fails codegen or tsc, and the real schema passes', { timeout: 180_000 }, () => {
  const results = checkSchemaBreak((line) => console.log(line));
  const byName = Object.fromEntries(results.map((r) => [r.name, r]));

  assert.equal(byName['unchanged schema'].got, 'pass', byName['unchanged schema'].output);

  const removed = byName['Message.body removed'];
  assert.equal(removed.got, 'codegen', removed.output);
  assert.match(removed.output, /Cannot query field "body" on type "Message"/);

  const retyped = byName['Message.body: Int!'];
  assert.equal(retyped.got, 'tsc', retyped.output);
  assert.match(retyped.output, /error TS\d+/);
});
