import type { ReactNode } from 'react';
import { highlightRanges } from './highlightRanges';

/** `text` with the words of `query` marked (see highlightRanges). */
export function highlight(text: string, query: string): ReactNode[] {
  return highlightRanges(text, query).map((piece, i) => (piece.marked ? <mark key={i}>{piece.text}</mark> : piece.text));
}
