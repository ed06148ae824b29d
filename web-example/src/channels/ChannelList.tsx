import { useEffect, type ReactNode } from 'react';
import { useQuery } from 'urql';
import { LiveChannelsDocument } from '../gql/graphql';
import { describeError } from '../ui/errors';
import { ErrorText } from '../ui/ErrorText';

interface Props {
  selectedId: string | null;
  onSelect(id: string): void;
  /** Shown after a channel's name (e.g. how many messages are new in it). */
  decorate?(channelId: string, selected: boolean): ReactNode;
}

/** The workspace's channels, kept current by a `@live` query. */
export function ChannelList({ selectedId, onSelect, decorate }: Props) {
  const [{ data, error }] = useQuery({ query: LiveChannelsDocument });
  const channels = data?.channels.edges.map((edge) => edge.node) ?? [];
  const first = channels[0];

  // Open the first channel when none is chosen yet.
  useEffect(() => {
    if (selectedId === null && first) onSelect(first.id);
  }, [selectedId, first, onSelect]);

  return (
    <nav className="channels" data-testid="channel-list" data-loaded={data ? 'true' : 'false'}>
      <h2>Channels</h2>
      <ul>
        {channels.map((channel) => (
          <li key={channel.id}>
            <button
              type="button"
              className={channel.id === selectedId ? 'selected' : ''}
              aria-current={channel.id === selectedId}
              onClick={() => onSelect(channel.id)}
              data-testid="channel-item"
              data-channel-id={channel.id}
            >
              # {channel.name}
              {decorate?.(channel.id, channel.id === selectedId)}
            </button>
          </li>
        ))}
      </ul>
      <ErrorText message={error ? describeError(error) : null} testId="channel-list-error" />
    </nav>
  );
}
