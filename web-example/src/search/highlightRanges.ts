const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A piece of a text, marked when it is where a word of the query starts a word. */
export interface Piece {
  readonly text: string;
  readonly marked: boolean;
}

/**
 * Splits `text` into pieces, marking where a word of `query` (letters and digits
 * only, as the index sees them) starts a word. Purely cosmetic: the server decides
 * what matches; any query text is safe here (it never becomes a regular expression
 * unescaped).
 */
export function highlightRanges(text: string, query: string): Piece[] {
  const words = query.match(/[\p{L}\p{N}]+/gu) ?? [];
  if (words.length === 0) return [{ text, marked: false }];
  const pattern = new RegExp(`(?<![\\p{L}\\p{N}])(?:${words.map(escapeRegExp).join('|')})`, 'giu');
  const pieces: Piece[] = [];
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    const start = match.index;
    if (start > last) pieces.push({ text: text.slice(last, start), marked: false });
    pieces.push({ text: match[0], marked: true });
    last = start + match[0].length;
  }
  if (last < text.length || pieces.length === 0) pieces.push({ text: text.slice(last), marked: false });
  return pieces;
}
