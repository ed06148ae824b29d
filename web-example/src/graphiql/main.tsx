import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
// Monaco's editor workers, bundled by Vite: nothing is loaded from a CDN.
import 'graphiql/setup-workers/vite';
import 'graphiql/style.css';
import './graphiql.css';
import { GraphiQLPage } from './GraphiQLPage';

const root = document.getElementById('graphiql');
if (!root) throw new Error('graphiql.html has no #graphiql');

createRoot(root).render(
  <StrictMode>
    <GraphiQLPage />
  </StrictMode>,
);
