import { useState, type FormEvent, type KeyboardEvent } from 'react';
import { AttachButton, UploadList } from '../files/AttachmentPicker';
import { useUploads } from '../files/useUploads';

/**
 * The message box. It empties at once; a refused message comes back into it. Files
 * picked beside it upload at once and go with the next message (whose text, if left
 * empty, is their names); it waits until every upload has finished.
 */
export function Composer({ onSend }: { onSend(body: string, attachmentIds: readonly string[]): Promise<boolean> }) {
  const [body, setBody] = useState('');
  const uploads = useUploads();

  const send = async () => {
    if (uploads.busy) return;
    const attachmentIds = uploads.readyIds;
    const names = uploads.items.filter((u) => u.fileId !== null && attachmentIds.includes(u.fileId)).map((u) => u.name);
    const text = body.trim() || names.join(', ');
    if (!text) return;
    setBody('');
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
        onChange={(e) => setBody(e.target.value)}
        onKeyDown={sendOnEnter}
        data-testid="composer-input"
      />
      <AttachButton uploads={uploads} />
      <button type="submit" disabled={uploads.busy} title={uploads.busy ? 'Waiting for uploads to finish' : undefined} data-testid="composer-send">
        Send
      </button>
      <UploadList uploads={uploads} />
    </form>
  );
}
