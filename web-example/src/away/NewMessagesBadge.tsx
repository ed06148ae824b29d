import { useEffect, useRef, useState } from 'react';
import { useClient } from 'urql';
import { ChannelMessageEventsDocument } from '../gql/graphql';
import {
  afterCursorError,
  applyEvent,
  awayLabel,
  loadMark,
  markKey,
  markRead,
  NO_MARK,
  saveMark,
  type ChannelMark,
} from './awayCounts';

interface Props {
  channelId: string;
  /** The channel shown now: its messages are seen, not counted. */
  open: boolean;
  viewerId: string;
}

/**
 * How many messages arrived in a channel while it was not open, including while the
 * page was closed: `messageEvents` resumes from the cursor kept in localStorage, so
 * the server replays exactly the events missed. Events fit here better than a live
 * list: what matters is each message created since a point, not the latest page.
 */
export function NewMessagesBadge({ channelId, open, viewerId }: Props) {
  const client = useClient();
  const key = markKey(viewerId, channelId);
  const [mark, setMark] = useState<ChannelMark>(() => loadMark(window.localStorage, key));
  // Where the subscription starts; changes only when a stored cursor is refused.
  const [startAfter, setStartAfter] = useState<string | null>(mark.cursor);
  const openRef = useRef(open);
  openRef.current = open;

  useEffect(() => {
    const counted = new Set<string>();
    const { unsubscribe } = client
      .subscription(ChannelMessageEventsDocument, { channelId, after: startAfter })
      .subscribe((result) => {
        if (result.error) {
          const code = result.error.graphQLErrors[0]?.extensions?.code;
          const refused = (previous: ChannelMark) => afterCursorError(previous, typeof code === 'string' ? code : undefined);
          if (!refused(NO_MARK)) return;
          setMark((previous) => refused(previous) ?? previous);
          setStartAfter(null);
          return;
        }
        const event = result.data?.messageEvents;
        if (!event) return;
        const repeat = event.kind === 'CREATED' && counted.has(event.messageId);
        if (event.kind === 'CREATED') counted.add(event.messageId);
        const open = openRef.current;
        setMark((previous) => applyEvent(previous, event, { open, viewerId, repeat }));
      });
    return unsubscribe;
  }, [client, channelId, startAfter, viewerId]);

  // Seen while open: nothing is new in the channel shown.
  useEffect(() => {
    if (open) setMark(markRead);
  }, [open, mark.count]);

  useEffect(() => saveMark(window.localStorage, key, mark), [key, mark]);

  if (mark.count === 0) return null;
  return (
    <span className="new-count" data-testid="new-count" title={awayLabel(mark.count)} aria-label={awayLabel(mark.count)}>
      {mark.count} new
    </span>
  );
}
