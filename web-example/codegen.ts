import { existsSync } from 'node:fs';
import type { CodegenConfig } from '@graphql-codegen/cli';

/**
 * The server's exported SDL (`python -m app export-schema` writes ../schema.graphql)
 * is the source of truth. SCHEMA_PATH overrides it (scripts/check-schema-break.mjs
 * points it at a deliberately broken copy); until the server has exported it, the
 * hand-written draft of the DESIGN.md surface stands in.
 */
function schemaPath(): string {
  if (process.env.SCHEMA_PATH) return process.env.SCHEMA_PATH;
  return existsSync('../schema.graphql') ? '../schema.graphql' : './schema.draft.graphql';
}

const config: CodegenConfig = {
  schema: schemaPath(),
  documents: ['src/**/*.graphql'],
  ignoreNoDocuments: false,
  generates: {
    'src/gql/': {
      preset: 'client',
      presetConfig: { fragmentMasking: false },
      config: {
        scalars: { DateTime: 'string' },
        strictScalars: true,
        useTypeImports: true,
        enumsAsTypes: true,
        avoidOptionals: { field: true, inputValue: false, object: false, defaultValue: false },
      },
    },
  },
};

export default config;
