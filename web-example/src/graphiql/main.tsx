import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import './monacoWorkers';
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
