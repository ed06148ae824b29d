/**
 * Which operations stream over graphql-transport-ws: subscriptions, and queries
 * that carry `@live` (unless `@live(if: false)`). Shared by the urql client and the
 * GraphiQL fetcher. The node shapes are structural so that both graphql-js and
 * urql's @0no-co/graphql.web documents fit, without importing either at run time.
 */

interface NameLike {
  readonly value: string;
}

interface ValueLike {
  readonly kind: string;
  readonly value?: unknown;
  readonly name?: NameLike;
}

interface DirectiveLike {
  readonly name: NameLike;
  readonly arguments?: ReadonlyArray<{ readonly name: NameLike; readonly value: ValueLike }>;
}

interface DefinitionLike {
  readonly kind: string;
  readonly operation?: string;
  readonly name?: NameLike | null;
  readonly directives?: ReadonlyArray<DirectiveLike>;
}

export interface DocumentLike {
  readonly definitions: ReadonlyArray<DefinitionLike>;
}

type Variables = Readonly<Record<string, unknown>> | null | undefined;

/** The operation a request runs: the named one, or the document's only one. */
export function selectOperation(
  document: DocumentLike,
  operationName?: string | null,
): DefinitionLike | undefined {
  const operations = document.definitions.filter((d) => d.kind === 'OperationDefinition');
  if (operationName) return operations.find((op) => op.name?.value === operationName);
  return operations.length === 1 ? operations[0] : undefined;
}

function isEnabled(directive: DirectiveLike, variables: Variables): boolean {
  const condition = directive.arguments?.find((arg) => arg.name.value === 'if')?.value;
  if (!condition) return true;
  if (condition.kind === 'BooleanValue') return condition.value !== false;
  if (condition.kind === 'Variable' && condition.name) {
    return variables?.[condition.name.value] !== false;
  }
  return true;
}

export function isLiveQuery(
  document: DocumentLike,
  operationName?: string | null,
  variables?: Variables,
): boolean {
  const operation = selectOperation(document, operationName);
  if (operation?.operation !== 'query') return false;
  const live = operation.directives?.find((d) => d.name.value === 'live');
  return live !== undefined && isEnabled(live, variables);
}

/** True for the operations whose results are a stream: subscriptions and live queries. */
export function isStreamed(
  document: DocumentLike,
  operationName?: string | null,
  variables?: Variables,
): boolean {
  const operation = selectOperation(document, operationName);
  if (operation?.operation === 'subscription') return true;
  return isLiveQuery(document, operationName, variables);
}
