/** The JWT lives in localStorage, shared with the GraphiQL page on the same origin. */
export const TOKEN_KEY = 'livegraph.token';

export function loadToken(): string | null {
  return window.localStorage.getItem(TOKEN_KEY);
}

export function storeToken(token: string | null): void {
  if (token) window.localStorage.setItem(TOKEN_KEY, token);
  else window.localStorage.removeItem(TOKEN_KEY);
}
