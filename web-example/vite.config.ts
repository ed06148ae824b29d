import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

/**
 * Two pages: the chat (index.html) and an offline GraphiQL (graphiql.html), both
 * served by the Python server from dist/ (WEB_DIST). In `npm run dev`, /graphql is
 * proxied (HTTP and WebSocket) to BACKEND_URL, so the browser sees one origin; set
 * VITE_GRAPHQL_URL to talk to the backend directly instead (then the backend's
 * ALLOWED_ORIGINS must list http://localhost:5173).
 */
const backend = process.env.BACKEND_URL ?? 'http://127.0.0.1:8000';

export default defineConfig({
  base: '/',
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 5000,
    rollupOptions: {
      input: {
        main: fileURLToPath(new URL('./index.html', import.meta.url)),
        graphiql: fileURLToPath(new URL('./graphiql.html', import.meta.url)),
      },
      onwarn(warning, warn) {
        // graphiql's packages start modules with "use no memo" (a React Compiler
        // hint); bundling drops it harmlessly.
        if (warning.code === 'MODULE_LEVEL_DIRECTIVE') return;
        warn(warning);
      },
    },
  },
  server: {
    port: 5173,
    strictPort: true,
    proxy: {
      '/graphql': { target: backend, ws: true, changeOrigin: false },
      // Signed upload and download URLs are relative to the server when it has no PUBLIC_URL.
      '/files': { target: backend, changeOrigin: false },
    },
  },
});
