import type { ChangeEvent } from 'react';
import { ErrorText } from '../ui/ErrorText';
import { formatSize } from './formatSize';
import type { Upload, Uploads } from './useUploads';

/** The file picker beside the send box. */
export function AttachButton({ uploads, disabled = false }: { uploads: Uploads; disabled?: boolean }) {
  const pick = (event: ChangeEvent<HTMLInputElement>) => {
    const files = event.target.files;
    if (files && files.length > 0) uploads.add(Array.from(files));
    event.target.value = ''; // the same file can be picked again
  };
  return (
    <label className="attach-button" title="Attach files">
      <input type="file" multiple onChange={pick} disabled={disabled} data-testid="attach-input" />
      <PaperclipIcon /> Attach
    </label>
  );
}

/** The files picked for the next message, each with its upload progress or error. */
export function UploadList({ uploads }: { uploads: Uploads }) {
  if (uploads.items.length === 0) return null;
  return (
    <ul className="uploads" data-testid="upload-list">
      {uploads.items.map((upload) => (
        <UploadRow key={upload.key} upload={upload} onRemove={() => uploads.remove(upload.key)} />
      ))}
    </ul>
  );
}

function UploadRow({ upload, onRemove }: { upload: Upload; onRemove(): void }) {
  const percent = Math.round(upload.progress * 100);
  return (
    <li className={`upload ${upload.status}`} data-testid="upload" data-status={upload.status} data-name={upload.name}>
      <span className="upload-name">{upload.name}</span>
      <span className="muted">{formatSize(upload.size)}</span>
      {upload.status !== 'failed' && (
        <>
          <progress max={100} value={percent} aria-label={`Uploading ${upload.name}`} data-testid="upload-progress" data-percent={percent} />
          <span className="muted" data-testid="upload-percent">
            {upload.status === 'done' ? 'ready' : `${percent}%`}
          </span>
        </>
      )}
      <button type="button" onClick={onRemove} aria-label={`Remove ${upload.name}`} data-testid="upload-remove">
        ✕
      </button>
      <ErrorText message={upload.error} testId="upload-error" />
    </li>
  );
}

/** Drawn, not an emoji: the page must not depend on an emoji font being installed. */
function PaperclipIcon() {
  return (
    <svg width="14" height="14" viewBox="0 0 24 24" fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round" strokeLinejoin="round" aria-hidden="true">
      <path d="M21.44 11.05l-9.19 9.19a6 6 0 0 1-8.49-8.49l9.19-9.19a4 4 0 0 1 5.66 5.66l-9.2 9.19a2 2 0 0 1-2.83-2.83l8.49-8.48" />
    </svg>
  );
}
