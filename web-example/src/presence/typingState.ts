/**
 * Who is typing, and when to tell the server that the viewer is. Pure: no run-time
 * imports, so the unit tests load this file alone.
 */

export interface Typist {
  readonly id: string;
  readonly name: string;
}

export interface TypingEventLike {
  readonly typing: boolean;
  readonly user: Typist;
}

/** The others typing now, in the order they started; the viewer is left out. */
export function applyTyping(typists: readonly Typist[], event: TypingEventLike, viewerId: string): readonly Typist[] {
  if (event.user.id === viewerId) return typists;
  const others = typists.filter((t) => t.id !== event.user.id);
  return event.typing ? [...others, { id: event.user.id, name: event.user.name }] : others;
}

export function typingLabel(typists: readonly Typist[]): string {
  const names = typists.map((t) => t.name);
  if (names.length === 0) return '';
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  if (names.length === 3) return `${names[0]}, ${names[1]} and ${names[2]} are typing…`;
  return `${names[0]}, ${names[1]} and ${names.length - 2} others are typing…`;
}

export interface Timers {
  now(): number;
  setTimeout(run: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/**
 * Turns keystrokes into `setTyping` calls: true on the first keystroke and again every
 * `renewMs` while typing goes on (the server forgets a state that is not renewed), false
 * after `idleMs` without a keystroke, on send and on blur. Never true twice within
 * `renewMs`, which keeps well under the server's per-user rate limit.
 */
export class TypingSignal {
  private typing = false;
  private lastTrue = -Infinity;
  private idle: unknown = null;

  constructor(
    private readonly send: (typing: boolean) => void,
    private readonly timers: Timers,
    private readonly renewMs = 2_000,
    private readonly idleMs = 4_000,
  ) {}

  /** A keystroke; `empty` when the box is now empty (that is stopping). */
  input(empty = false): void {
    if (empty) {
      this.stop();
      return;
    }
    const now = this.timers.now();
    if (!this.typing || now - this.lastTrue >= this.renewMs) {
      this.typing = true;
      this.lastTrue = now;
      this.send(true);
    }
    this.clearIdle();
    this.idle = this.timers.setTimeout(() => this.stop(), this.idleMs);
  }

  stop(): void {
    this.clearIdle();
    if (!this.typing) return;
    this.typing = false;
    this.send(false);
  }

  private clearIdle(): void {
    if (this.idle !== null) this.timers.clearTimeout(this.idle);
    this.idle = null;
  }
}
