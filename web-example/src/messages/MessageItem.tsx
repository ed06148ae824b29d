import { useState, type FormEvent } from 'react';
import { useMutation } from 'urql';
import { LinkPreviewCard } from '../linkPreview/LinkPreviewCard';
import { Attachments } from '../files/Attachments';
import { DeleteMessageDocument, EditMessageDocument } from '../gql/graphql';
import { describeError } from '../ui/errors';
import { ErrorText } from '../ui/ErrorText';
import type { Message } from './types';

export type MessageChange = { edited: Message } | { deletedId: string };

interface Props {
  message: Message;
  /** Shown before the server confirmed it: no actions yet. */
  pending?: boolean;
  isOwn: boolean;
  /** Called with this page's own edit or delete once the server has accepted it. */
  onChanged(change: MessageChange): void;
}

function time(iso: string): string {
  return new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/**
 * One message row. A pending send and the message that confirms it render through
 * this same component under the same key, so the row changes in place.
 */
export function MessageItem({ message, pending = false, isOwn, onChanged }: Props) {
  const [editing, setEditing] = useState(false);
  return (
    <li
      className={pending ? 'message pending' : 'message'}
      data-testid="message"
      data-status={pending ? 'pending' : 'sent'}
      data-message-id={pending ? undefined : message.id}
    >
      <header>
        <strong data-testid="message-author">{message.author.name}</strong> <time dateTime={message.createdAt}>{time(message.createdAt)}</time>
        {pending && <span className="muted"> sending…</span>}
        {message.editedAt && <span className="muted"> (edited)</span>}
      </header>
      {editing ? (
        <EditForm message={message} onDone={() => setEditing(false)} onChanged={onChanged} />
      ) : (
        <p className="body" data-testid="message-body">
          {message.body}
        </p>
      )}
      <LinkPreviewCard preview={message.linkPreview} />
      <Attachments files={message.attachments} />
      {isOwn && !pending && !editing && <OwnActions message={message} onEdit={() => setEditing(true)} onChanged={onChanged} />}
    </li>
  );
}

function OwnActions({ message, onEdit, onChanged }: { message: Message; onEdit(): void; onChanged(change: MessageChange): void }) {
  const [{ fetching, error }, deleteMessage] = useMutation(DeleteMessageDocument);
  const remove = async () => {
    const result = await deleteMessage({ id: message.id });
    if (result.data) onChanged({ deletedId: result.data.deleteMessage });
  };
  return (
    <div className="actions">
      <button type="button" onClick={onEdit} data-testid="message-edit">
        Edit
      </button>
      <button type="button" onClick={() => void remove()} disabled={fetching} data-testid="message-delete">
        Delete
      </button>
      <ErrorText message={error ? describeError(error) : null} testId="message-error" />
    </div>
  );
}

function EditForm({ message, onDone, onChanged }: { message: Message; onDone(): void; onChanged(change: MessageChange): void }) {
  const [body, setBody] = useState(message.body);
  const [{ fetching, error }, editMessage] = useMutation(EditMessageDocument);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const result = await editMessage({ input: { id: message.id, body } });
    if (result.data) {
      onChanged({ edited: result.data.editMessage });
      onDone();
    }
  };
  return (
    <form className="edit" onSubmit={submit}>
      <input value={body} onChange={(e) => setBody(e.target.value)} required data-testid="message-edit-input" />
      <button type="submit" disabled={fetching} data-testid="message-edit-save">
        Save
      </button>
      <button type="button" onClick={onDone}>
        Cancel
      </button>
      <ErrorText message={error ? describeError(error) : null} testId="message-error" />
    </form>
  );
}
