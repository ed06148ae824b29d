import type { CodegenConfig } from '@graphql-codegen/cli';

/**
 * The server's exported SDL (`python -m app export-schema` writes ../schema.graphql,
 * checked in and tested for drift) is the source of truth. SCHEMA_PATH overrides it
 * only for scripts/check-schema-break.mjs, which points it at broken copies.
 */
const schema = process.env.SCHEMA_PATH ?? '../schema.graphql';

const config: CodegenConfig = {
  schema,
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
