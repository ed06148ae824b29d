import type { MessageLinkPreviewFragment } from '../gql/graphql';

type Preview = NonNullable<MessageLinkPreviewFragment['linkPreview']>;

/** The title of the page a message links to, under the message, once the server fetched it. */
export function LinkPreviewCard({ preview }: { preview: Preview | null }) {
  // The server only previews http(s) links; anything else is not made a link.
  if (!preview || !/^https?:\/\//i.test(preview.url)) return null;
  return (
    <a className="link-preview" href={preview.url} target="_blank" rel="noopener noreferrer nofollow" data-testid="link-preview">
      <strong data-testid="link-preview-title">{preview.title}</strong>
      <span className="muted">{preview.url}</span>
    </a>
  );
}
