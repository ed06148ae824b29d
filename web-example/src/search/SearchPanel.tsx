import { useState } from 'react';
import { useQuery } from 'urql';
import { LiveSearchDocument } from '../gql/graphql';
import { describeError } from '../ui/errors';
import { ErrorText } from '../ui/ErrorText';
import { highlight } from './highlight';
import { useDebounced } from './useDebounced';

const DEBOUNCE_MS = 250;
const RESULTS = 20;
/** The server's limit on a search's text. */
const MAX_QUERY = 500;

/**
 * A search box over every channel of the workspace. The results are a `@live` query:
 * a matching message sent, edited or deleted anywhere shows up here by itself.
 */
export function SearchPanel({ onOpenChannel }: { onOpenChannel(channelId: string): void }) {
  const [text, setText] = useState('');
  const query = useDebounced(text.trim(), DEBOUNCE_MS);
  const [{ data, error, fetching, operation }] = useQuery({
    query: LiveSearchDocument,
    variables: { query, first: RESULTS },
    pause: query === '',
  });
  // The results on screen are for the query they were asked with, which trails the box.
  const answered = (operation?.variables.query ?? null) === query && query !== '';
  // While a new query runs, the last results stay (dimmed) rather than flicker away.
  const results = text.trim() !== '' ? (data?.searchMessages.edges.map((edge) => edge.node) ?? []) : [];
  const state = text.trim() === '' ? 'idle' : text.trim() !== query || !answered || (fetching && !data) ? 'searching' : 'done';

  return (
    <section className="search" data-testid="search-panel" data-state={state} data-query={answered ? query : ''}>
      <h2>Search</h2>
      <input
        type="search"
        placeholder="Search all channels"
        value={text}
        maxLength={MAX_QUERY}
        onChange={(e) => setText(e.target.value)}
        aria-label="Search messages in all channels"
        data-testid="search-input"
      />
      {state === 'searching' && <p className="muted">Searching…</p>}
      <ErrorText message={error && answered ? describeError(error) : null} testId="search-error" />
      {state === 'done' && !error && results.length === 0 && (
        <p className="muted" data-testid="search-empty">
          No messages match.
        </p>
      )}
      {results.length > 0 && (
        <ol className={answered ? 'search-results' : 'search-results stale'} data-testid="search-results">
          {results.map((message) => (
            <li key={message.id} data-testid="search-result" data-message-id={message.id}>
              <button type="button" onClick={() => onOpenChannel(message.channel.id)} title={`Open # ${message.channel.name}`}>
                <span className="search-meta">
                  <span data-testid="search-result-channel"># {message.channel.name}</span> · <span>{message.author.name}</span>
                </span>
                <span className="search-body" data-testid="search-result-body">
                  {highlight(message.body, query)}
                </span>
              </button>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
