import { useMutation, useQuery } from 'urql';
import { CancelScheduledMessageDocument, LiveScheduledMessagesDocument, type ScheduledMessageFieldsFragment } from '../gql/graphql';
import { describeError } from '../ui/errors';
import { ErrorText } from '../ui/ErrorText';
import { formatSendAt } from './sendAt';

const STATUS_TEXT: Record<ScheduledMessageFieldsFragment['status'], string> = {
  PENDING: 'pending',
  SENT: 'sent',
  CANCELLED: 'cancelled',
  FAILED: 'failed',
};

/** The viewer's scheduled messages in a channel, soonest first; live, so each turns SENT by itself. */
export function ScheduledMessages({ channelId }: { channelId: string }) {
  const [{ data, error }] = useQuery({ query: LiveScheduledMessagesDocument, variables: { channelId } });
  const items = data?.scheduledMessages.edges.map((edge) => edge.node) ?? [];
  if (items.length === 0 && !error) return null;
  return (
    <section className="scheduled" data-testid="scheduled-messages">
      <h3>Scheduled by you</h3>
      <ul>
        {items.map((item) => (
          <ScheduledItem key={item.id} item={item} />
        ))}
      </ul>
      <ErrorText message={error ? describeError(error) : null} testId="scheduled-error" />
    </section>
  );
}

function ScheduledItem({ item }: { item: ScheduledMessageFieldsFragment }) {
  const [{ fetching, error }, cancel] = useMutation(CancelScheduledMessageDocument);
  return (
    <li className={`scheduled-item ${item.status.toLowerCase()}`} data-testid="scheduled-item" data-status={item.status} data-scheduled-id={item.id}>
      <span className="scheduled-body" data-testid="scheduled-body">
        {item.body}
      </span>
      <time dateTime={item.sendAt}>{formatSendAt(item.sendAt)}</time>
      <span className="status" data-testid="scheduled-status">
        {STATUS_TEXT[item.status]}
      </span>
      {item.status === 'PENDING' && (
        <button type="button" onClick={() => void cancel({ id: item.id })} disabled={fetching} data-testid="scheduled-cancel">
          Cancel
        </button>
      )}
      <ErrorText message={error ? describeError(error) : null} testId="scheduled-cancel-error" />
    </li>
  );
}
