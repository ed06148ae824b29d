import { useRef } from 'react';
import type { ViewerFieldsFragment } from '../gql/graphql';
import { TypingIndicator } from '../presence/TypingIndicator';
import { useTypingSignal } from '../presence/useTypingSignal';
import { ScheduledMessages } from '../scheduled/ScheduledMessages';
import { SendLater } from '../scheduled/SendLater';
import { ErrorText } from '../ui/ErrorText';
import { Composer } from './Composer';
import { MessageItem } from './MessageItem';
import { reconcile, type PendingMessage } from './reconcile';
import type { Message } from './types';
import { useMessageFeed } from './useMessageFeed';
import { useOptimisticSend } from './useOptimisticSend';

const ignore = () => undefined;

interface Row {
  readonly key: string;
  readonly message: Message;
  readonly pending: boolean;
}

function asMessage(send: PendingMessage, viewer: ViewerFieldsFragment): Message {
  const author = { id: viewer.id, name: viewer.name };
  return {
    id: send.key,
    body: send.body,
    createdAt: send.createdAt,
    editedAt: null,
    author,
    linkPreview: null,
    attachments: [],
  };
}

/** One channel: the live page, older pages below it, and this page's pending sends on top. */
export function ChannelView({ channelId, viewer }: { channelId: string; viewer: ViewerFieldsFragment }) {
  const feed = useMessageFeed(channelId);
  const sender = useOptimisticSend(channelId, feed.live);
  const typing = useTypingSignal(channelId);
  const { unconfirmed, confirmedBy } = reconcile(sender.pending, feed.live ?? [], viewer.id);

  // A confirmed message keeps the React key of its pending row, so the row is
  // updated in place (pending -> sent) rather than replaced: no flicker.
  const rowKeys = useRef(new Map<string, string>()).current;
  confirmedBy.forEach((key, id) => rowKeys.set(id, key));

  const rows: Row[] = [
    ...unconfirmed.map((p) => ({ key: p.key, message: asMessage(p, viewer), pending: true })),
    ...[...(feed.live ?? []), ...feed.older].map((m) => ({ key: rowKeys.get(m.id) ?? m.id, message: m, pending: false })),
  ];

  return (
    <section className="channel" data-testid="channel-view" data-channel-id={channelId} data-loaded={feed.live ? 'true' : 'false'}>
      <Composer onSend={sender.send} typing={typing} actions={(draft) => <SendLater channelId={channelId} draft={draft} />} />
      <TypingIndicator channelId={channelId} viewerId={viewer.id} />
      <ScheduledMessages channelId={channelId} />
      <ErrorText message={sender.error} testId="send-error" />
      <ErrorText message={feed.error} testId="feed-error" />
      <ol className="messages" data-testid="message-list">
        {/* One flat list: a row keeps its key, and so its DOM node, when its
            message moves from pending to the live page. */}
        {rows.map(({ key, message, pending }) => (
          <MessageItem
            key={key}
            message={message}
            pending={pending}
            isOwn={message.author.id === viewer.id}
            onChanged={pending ? ignore : feed.patchOlder}
          />
        ))}
      </ol>
      {feed.live && rows.length === 0 && (
        <p className="muted" data-testid="no-messages">
          No messages yet.
        </p>
      )}
      {feed.hasOlder && (
        <button type="button" onClick={feed.loadOlder} disabled={feed.loadingOlder} data-testid="load-older">
          {feed.loadingOlder ? 'Loading…' : 'Load older messages'}
        </button>
      )}
    </section>
  );
}
