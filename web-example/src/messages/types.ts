import type { MessageFieldsFragment } from '../gql/graphql';

export type Message = MessageFieldsFragment;
