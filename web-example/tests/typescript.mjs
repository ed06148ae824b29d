// Loads one of the client's dependency-free TypeScript modules into a Node test:
// TypeScript's own transpiler strips the types (Node 20 cannot), nothing else.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import { webRoot } from './server.mjs';

const outDir = mkdtempSync(join(tmpdir(), 'web-example-unit-'));
process.on('exit', () => rmSync(outDir, { recursive: true, force: true }));

export async function importTs(relativePath) {
  const source = readFileSync(join(webRoot, relativePath), 'utf8');
  const { outputText } = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true },
    fileName: relativePath,
  });
  if (/^import\s(?!type\b)/m.test(outputText)) throw new Error(`${relativePath} has run-time imports`);
  const outFile = join(outDir, basename(relativePath).replace(/\.ts$/, '.mjs'));
  writeFileSync(outFile, outputText);
  return import(pathToFileURL(outFile).href);
}
