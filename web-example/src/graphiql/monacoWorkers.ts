/**
 * Monaco's editor workers, bundled by Vite from the installed packages: nothing
 * comes from a CDN. This does what `graphiql/setup-workers/vite` does, but from our
 * own source: Vite's dev-server dependency pre-bundling cannot follow `?worker`
 * imports inside node_modules, so importing that module breaks `npm run dev`.
 */
import EditorWorker from 'monaco-editor/esm/vs/editor/editor.worker.js?worker';
import JsonWorker from 'monaco-editor/esm/vs/language/json/json.worker.js?worker';
import GraphQLWorker from 'monaco-graphql/esm/graphql.worker.js?worker';

self.MonacoEnvironment = {
  getWorker(_workerId: string, label: string) {
    if (label === 'json') return new JsonWorker();
    if (label === 'graphql') return new GraphQLWorker();
    return new EditorWorker();
  },
};
