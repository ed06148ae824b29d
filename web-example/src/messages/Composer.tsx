import { useState, type FormEvent, type KeyboardEvent, type ReactNode } from 'react';
import { AttachButton, UploadList } from '../files/AttachmentPicker';
import { useUploads } from '../files/useUploads';

/**
 * The message box. It empties at once; a refused message comes back into it. Files
 * picked beside it upload at once and go with the next message (whose text, if left
 * empty, is their names); it waits until every upload has finished.
 */
interface Props {
  onSend(body: string, attachmentIds: readonly string[]): Promise<boolean>;
  /** Told about keystrokes (`empty` once the box is empty again) and when typing stops. */
  typing?: { input(empty: boolean): void; stop(): void };
  /** More controls beside the send button, given the text and a way to clear it. */
  actions?(draft: { body: string; clear(): void }): ReactNode;
}

export function Composer({ onSend, typing, actions }: Props) {
  const [body, setBody] = useState('');
  const uploads = useUploads();

  const send = async () => {
    if (uploads.busy) return;
    const attachmentIds = uploads.readyIds;
    const names = uploads.items.filter((u) => u.fileId !== null && attachmentIds.includes(u.fileId)).map((u) => u.name);
    const text = body.trim() || names.join(', ');
    if (!text) return;
    setBody('');
    typing?.stop();
    const sent = await onSend(text, attachmentIds);
    if (sent) uploads.clearSent(attachmentIds);
    else setBody((typed) => typed || body.trim());
  };
  const submit = (event: FormEvent) => {
    event.preventDefault();
    void send();
  };
  const sendOnEnter = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === 'Enter' && !event.shiftKey) {
      event.preventDefault();
      void send();
    }
  };

  return (
    <form className="composer" onSubmit={submit}>
      <textarea
        rows={2}
        placeholder="Message (Enter to send, Shift+Enter for a new line)"
        value={body}
        onChange={(e) => {
          setBody(e.target.value);
          typing?.input(e.target.value.trim() === '');
        }}
        onBlur={() => typing?.stop()}
        onKeyDown={sendOnEnter}
        data-testid="composer-input"
      />
      <AttachButton uploads={uploads} />
      <button type="submit" disabled={uploads.busy} title={uploads.busy ? 'Waiting for uploads to finish' : undefined} data-testid="composer-send">
        Send
      </button>
      {actions?.({ body, clear: () => setBody('') })}
      <UploadList uploads={uploads} />
    </form>
  );
}
