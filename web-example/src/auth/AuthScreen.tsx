import { SignInForm } from './SignInForm';
import { SignUpForm } from './SignUpForm';

export function AuthScreen() {
  return (
    <main className="auth" data-testid="auth-screen">
      <h1>livegraph chat</h1>
      <div className="auth-forms">
        <SignInForm />
        <SignUpForm />
      </div>
    </main>
  );
}
