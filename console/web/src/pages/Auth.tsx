// Sign in and sign up. The first account of a deployment becomes its owner.

import { useState } from "preact/hooks";
import { signIn, signUp } from "../api";
import { navigate } from "../router";
import { Feedback, PageTitle, useAction } from "../ui";

export function SignIn() {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const action = useAction();
  const submit = (event: Event) => {
    event.preventDefault();
    void action.run(async () => {
      await signIn(email.trim(), password);
      navigate("#/apps");
    });
  };
  return (
    <section class="narrow">
      <PageTitle title="Sign in">Sign in</PageTitle>
      <form onSubmit={submit} class="stack">
        <label>
          Email
          <input
            type="email"
            autoComplete="username"
            required
            value={email}
            onInput={(e) => setEmail(e.currentTarget.value)}
          />
        </label>
        <label>
          Password
          <input
            type="password"
            autoComplete="current-password"
            required
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        <button type="submit" class="primary" disabled={action.busy}>
          Sign in
        </button>
        <Feedback error={action.error} />
      </form>
      <p>
        No account yet? <a href="#/signup">Sign up</a>
      </p>
    </section>
  );
}

export function SignUp() {
  const [fields, setFields] = useState({ email: "", password: "", first_name: "", last_name: "" });
  const action = useAction();
  const set = (name: keyof typeof fields) => (e: Event) =>
    setFields({ ...fields, [name]: (e.currentTarget as HTMLInputElement).value });
  const submit = (event: Event) => {
    event.preventDefault();
    void action.run(async () => {
      await signUp({ ...fields, email: fields.email.trim() });
      await signIn(fields.email.trim(), fields.password);
      navigate("#/apps");
    });
  };
  return (
    <section class="narrow">
      <PageTitle title="Sign up">Create an account</PageTitle>
      <p class="muted">
        The first account of a deployment becomes its owner, with every right (and the demo
        application).
      </p>
      <form onSubmit={submit} class="stack">
        <label>
          First name
          <input required maxLength={50} autoComplete="given-name" value={fields.first_name} onInput={set("first_name")} />
        </label>
        <label>
          Last name
          <input maxLength={50} autoComplete="family-name" value={fields.last_name} onInput={set("last_name")} />
        </label>
        <label>
          Email
          <input type="email" required autoComplete="email" value={fields.email} onInput={set("email")} />
        </label>
        <label>
          Password <span class="muted">(8 to 128 characters)</span>
          <input
            type="password"
            required
            minLength={8}
            maxLength={128}
            autoComplete="new-password"
            value={fields.password}
            onInput={set("password")}
          />
        </label>
        <button type="submit" class="primary" disabled={action.busy}>
          Sign up
        </button>
        <Feedback error={action.error} />
      </form>
      <p>
        Have an account? <a href="#/signin">Sign in</a>
      </p>
    </section>
  );
}
