import { useState, type FormEvent } from 'react';
import { useMutation } from 'urql';
import { SignUpDocument, type SignUpInput } from '../gql/graphql';
import { describeError } from '../ui/errors';
import { ErrorText } from '../ui/ErrorText';
import { useSession } from './SessionProvider';

type Mode = 'workspace' | 'invite';

export function SignUpForm() {
  const { signIn } = useSession();
  const [mode, setMode] = useState<Mode>('workspace');
  const [fields, setFields] = useState({ email: '', password: '', name: '', workspaceName: '', inviteCode: '' });
  const [{ fetching, error }, run] = useMutation(SignUpDocument);

  const field = (key: keyof typeof fields) => ({
    value: fields[key],
    onChange: (e: { target: { value: string } }) => setFields({ ...fields, [key]: e.target.value }),
  });

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const { email, password, name, workspaceName, inviteCode } = fields;
    // Exactly one of workspaceName and inviteCode, as the server requires.
    const input: SignUpInput =
      mode === 'workspace' ? { email, password, name, workspaceName } : { email, password, name, inviteCode };
    const result = await run({ input });
    if (result.data) signIn(result.data.signUp.token);
  };

  return (
    <form className="card" onSubmit={submit} data-testid="signup-form">
      <h2>Sign up</h2>
      <label>
        Name
        <input autoComplete="name" required {...field('name')} data-testid="signup-name" />
      </label>
      <label>
        Email
        <input type="email" autoComplete="email" required {...field('email')} data-testid="signup-email" />
      </label>
      <label>
        Password
        <input type="password" autoComplete="new-password" required {...field('password')} data-testid="signup-password" />
      </label>
      <fieldset>
        <label className="inline">
          <input type="radio" checked={mode === 'workspace'} onChange={() => setMode('workspace')} data-testid="signup-mode-workspace" />
          New workspace
        </label>
        <label className="inline">
          <input type="radio" checked={mode === 'invite'} onChange={() => setMode('invite')} data-testid="signup-mode-invite" />
          Join with an invite code
        </label>
      </fieldset>
      {mode === 'workspace' ? (
        <label>
          Workspace name
          <input required {...field('workspaceName')} data-testid="signup-workspace" />
        </label>
      ) : (
        <label>
          Invite code
          <input required {...field('inviteCode')} data-testid="signup-invite" />
        </label>
      )}
      <button type="submit" disabled={fetching} data-testid="signup-submit">
        Sign up
      </button>
      <ErrorText message={error ? describeError(error) : null} testId="signup-error" />
    </form>
  );
}
