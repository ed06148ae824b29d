// What each subscriber sends: the twin of bench/cohorts.py (and of loadgen.py's
// documents), so that both load generators put the same queries to the targets.
//
// Fan-out subscriber i subscribes with variable set i mod K ({c, n: FIRST + i mod K})
// as user i mod U; with U > 1 the document also reads `viewer`. Pure: no I/O.

export const FIRST = 50;
export const MAX_COHORTS = 2000;
export const MAX_USERS = 2000;

const MESSAGES =
  "messages(channelId: $c, first: $n) { edges { node { id body author { name } } } }";
const VIEWER = "viewer { id name }";
// loadgen.py's LIVE_DOCUMENT and SUBSCRIPTION_DOCUMENT (the memory scenario's query).
const SELECTION =
  "messages(channelId: $c, first: 50) { edges { node { id body author { name } } } }";

export function fanoutDocument(kind, withViewer) {
  const selection = withViewer ? `${VIEWER} ${MESSAGES}` : MESSAGES;
  if (kind === "live") return `query Msgs($c: ID!, $n: Int!) @live { ${selection} }`;
  if (kind === "subscription") return `subscription Msgs($c: ID!, $n: Int!) { ${selection} }`;
  return null;
}

export function plainDocument(kind) {
  if (kind === "live") return `query Msgs($c: ID!) @live { ${SELECTION} }`;
  if (kind === "subscription") return `subscription Msgs($c: ID!) { ${SELECTION} }`;
  return null;
}

export function variables(channelId, index, cohorts) {
  return { c: channelId, n: FIRST + (index % cohorts) };
}

export function userOf(index, users) {
  return index % users;
}

// null if a target of this kind can run the row, else the reason it cannot.
export function whyNot(kind, cohorts, users, subscribers) {
  if (cohorts > subscribers || users > subscribers)
    return `${cohorts} variable sets or ${users} users for ${subscribers} subscribers`;
  if (cohorts > MAX_COHORTS || users > MAX_USERS)
    return `at most ${MAX_COHORTS} variable sets and ${MAX_USERS} users`;
  if (kind !== "live" && kind !== "subscription" && (cohorts > 1 || users > 1))
    return "its subscribers send no query: one frame for all";
  if (kind === "subscription" && users > 1)
    return "a subscription selects one root field: no `viewer` beside `messages`";
  return null;
}
