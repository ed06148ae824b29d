#!/usr/bin/env node
/**
 * Proves that the typed client notices a server schema change that breaks it.
 *
 * In a scratch copy of the client (src/, codegen.ts, tsconfig.json, and a link to
 * node_modules), it runs the same `codegen && tsc --noEmit` as `npm run typecheck`
 * against three schemas derived from the real one:
 *   - unchanged:                    must pass (the scratch setup itself is sound);
 *   - Message.body removed:         must fail (codegen validates the operations);
 *   - Message.body made an Int:     must fail (the operations still validate, but the
 *                                   generated types no longer fit the code: tsc).
 * Exits 0 when all three behave so; importable for tests as checkSchemaBreak().
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kind, parse, print, visit } from 'graphql';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const bin = (name) => join(root, 'node_modules', '.bin', name);

export function serverSchemaPath() {
  return resolve(root, '..', 'schema.graphql');
}

/** The SDL with one field of one type rewritten (or removed, when `replace` returns null). */
export function rewriteField(sdl, typeName, fieldName, replace) {
  let found = false;
  const document = visit(parse(sdl), {
    ObjectTypeDefinition(node) {
      if (node.name.value !== typeName) return undefined;
      const fields = node.fields.flatMap((field) => {
        if (field.name.value !== fieldName) return [field];
        found = true;
        const next = replace(field);
        return next ? [next] : [];
      });
      return { ...node, fields };
    },
  });
  if (!found) throw new Error(`the schema has no ${typeName}.${fieldName}`);
  return print(document);
}

const withType = (typeName) => (field) => ({
  ...field,
  type: { kind: Kind.NON_NULL_TYPE, type: { kind: Kind.NAMED_TYPE, name: { kind: Kind.NAME, value: typeName } } },
});

function scratchClient() {
  const dir = mkdtempSync(join(tmpdir(), 'schema-break-'));
  cpSync(join(root, 'src'), join(dir, 'src'), { recursive: true, filter: (path) => !path.includes(`${join('src', 'gql')}`) });
  for (const file of ['codegen.ts', 'tsconfig.json', 'package.json']) cpSync(join(root, file), join(dir, file));
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir');
  return dir;
}

function run(command, args, cwd, env) {
  const result = spawnSync(command, args, { cwd, env: { ...process.env, ...env }, encoding: 'utf8' });
  return { ok: result.status === 0, output: `${result.stdout}${result.stderr}` };
}

/** Runs codegen then tsc in the scratch client against `sdl`; reports which step failed. */
export function typecheckAgainst(sdl) {
  const dir = scratchClient();
  try {
    const schemaPath = join(dir, 'schema.graphql');
    writeFileSync(schemaPath, sdl);
    const codegen = run(bin('graphql-codegen'), ['--config', 'codegen.ts'], dir, { SCHEMA_PATH: schemaPath });
    if (!codegen.ok) return { ok: false, step: 'codegen', output: codegen.output };
    const tsc = run(bin('tsc'), ['--noEmit', '-p', 'tsconfig.json'], dir, {});
    return { ok: tsc.ok, step: tsc.ok ? null : 'tsc', output: tsc.output };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function checkSchemaBreak(log = () => {}) {
  const sdl = readFileSync(serverSchemaPath(), 'utf8');
  const cases = [
    { name: 'unchanged schema', sdl, expect: 'pass' },
    { name: 'Message.body removed', sdl: rewriteField(sdl, 'Message', 'body', () => null), expect: 'codegen' },
    { name: 'Message.body: Int!', sdl: rewriteField(sdl, 'Message', 'body', withType('Int')), expect: 'tsc' },
  ];
  return cases.map((c) => {
    const result = typecheckAgainst(c.sdl);
    const got = result.ok ? 'pass' : result.step;
    log(`${got === c.expect ? 'ok  ' : 'FAIL'} ${c.name}: expected ${c.expect}, got ${got}`);
    return { ...c, got, output: result.output };
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(`schema: ${serverSchemaPath()}`);
  const results = checkSchemaBreak(console.log);
  const failed = results.filter((r) => r.got !== r.expect);
  for (const r of failed) console.log(`--- ${r.name} output:\n${r.output}`);
  process.exit(failed.length === 0 ? 0 : 1);
}
