import { useSubscription } from 'urql';
import { TypingInChannelDocument, type TypingInChannelSubscription } from '../gql/graphql';
import { applyTyping, typingLabel, type Typist } from './typingState';

/** "Alice is typing…" for the open channel, from the `typing` subscription. */
export function TypingIndicator({ channelId, viewerId }: { channelId: string; viewerId: string }) {
  const [{ data: typists = [] }] = useSubscription<TypingInChannelSubscription, readonly Typist[]>(
    { query: TypingInChannelDocument, variables: { channelId } },
    (previous = [], event) => applyTyping(previous, event.typing, viewerId),
  );
  const label = typingLabel(typists);
  return (
    <p className="typing-indicator muted" data-testid="typing-indicator" data-count={typists.length} aria-live="polite">
      {label}
    </p>
  );
}
