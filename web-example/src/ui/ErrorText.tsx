export function ErrorText({ message, testId }: { message: string | null; testId: string }) {
  if (!message) return null;
  return (
    <p className="error" role="alert" data-testid={testId}>
      {message}
    </p>
  );
}
