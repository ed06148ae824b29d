import type { AttachmentFieldsFragment } from '../gql/graphql';
import { formatSize } from './formatSize';
import { serverUrl } from './serverUrl';

/** Shown as pictures; anything else is a download link. */
const IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);

/** A message's files: images as thumbnails, other files as download links. */
export function Attachments({ files }: { files: readonly AttachmentFieldsFragment[] }) {
  if (files.length === 0) return null;
  return (
    <ul className="attachments" data-testid="attachments">
      {files.map((file) => {
        const href = serverUrl(file.url);
        return (
          <li key={file.id} data-testid="attachment" data-file-id={file.id} data-name={file.name}>
            {IMAGE_TYPES.has(file.contentType) ? (
              <a href={href} target="_blank" rel="noopener noreferrer" title={`${file.name} (${formatSize(file.size)})`}>
                <img className="thumbnail" src={href} alt={file.name} loading="lazy" data-testid="attachment-image" />
              </a>
            ) : (
              <a className="file-link" href={href} download={file.name} data-testid="attachment-link">
                <span aria-hidden="true">⬇</span> <span data-testid="attachment-name">{file.name}</span>{' '}
                <span className="muted" data-testid="attachment-size">
                  ({formatSize(file.size)})
                </span>
              </a>
            )}
          </li>
        );
      })}
    </ul>
  );
}
