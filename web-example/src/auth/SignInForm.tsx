import { useState, type FormEvent } from 'react';
import { useMutation } from 'urql';
import { SignInDocument } from '../gql/graphql';
import { describeError } from '../ui/errors';
import { ErrorText } from '../ui/ErrorText';
import { useSession } from './SessionProvider';

export function SignInForm() {
  const { signIn } = useSession();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [{ fetching, error }, run] = useMutation(SignInDocument);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const result = await run({ input: { email, password } });
    if (result.data) signIn(result.data.signIn.token);
  };

  return (
    <form className="card" onSubmit={submit} data-testid="signin-form">
      <h2>Sign in</h2>
      <label>
        Email
        <input type="email" autoComplete="email" required value={email} onChange={(e) => setEmail(e.target.value)} data-testid="signin-email" />
      </label>
      <label>
        Password
        <input type="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} data-testid="signin-password" />
      </label>
      <button type="submit" disabled={fetching} data-testid="signin-submit">
        Sign in
      </button>
      <ErrorText message={error ? describeError(error) : null} testId="signin-error" />
    </form>
  );
}
