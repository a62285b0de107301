// Applications: the ones the user can see, create, rename, delete.

import { useState } from "preact/hooks";
import { admin } from "../api";
import { href } from "../router";
import type { Application } from "../types";
import { canManage, roleLabel } from "../types";
import { ConfirmButton, Feedback, Loading, NameForm, PageTitle, Scroll, useAction, useLoad } from "../ui";

export function Apps() {
  const apps = useLoad(
    () => admin<{ applications: Application[] }>("GET", "/apps").then((r) => r.applications),
    [],
  );
  const [name, setName] = useState("");
  const action = useAction();
  const create = (event: Event) => {
    event.preventDefault();
    void action.run(async () => {
      const r = await admin<{ application: Application }>("POST", "/apps", { name });
      setName("");
      apps.reload();
      return `Application "${r.application.name}" created.`;
    });
  };
  return (
    <section>
      <PageTitle title="Applications">Applications</PageTitle>
      <form onSubmit={create} class="row" aria-label="Create an application">
        <label>
          New application name
          <input required maxLength={50} value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <button type="submit" class="primary" disabled={action.busy}>
          Create application
        </button>
      </form>
      <Feedback error={action.error ?? apps.error} done={action.done} />
      {apps.loading && !apps.data ? <Loading what="applications" /> : null}
      {apps.data && apps.data.length === 0 ? <p>No application yet: create one above.</p> : null}
      {apps.data && apps.data.length > 0 ? (
        <Scroll label="Applications">
          <table>
            <caption class="sr-only">Applications you can see</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Owner</th>
                <th scope="col">Your role</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {apps.data.map((app) => (
                <AppRow key={app.application_id} app={app} onChange={apps.reload} />
              ))}
            </tbody>
          </table>
        </Scroll>
      ) : null}
    </section>
  );
}

function AppRow(props: { app: Application; onChange: () => void }) {
  const { app } = props;
  const [renaming, setRenaming] = useState(false);
  const action = useAction();
  const rename = (name: string) =>
    void action.run(async () => {
      await admin("PUT", `/apps/${app.application_id}`, { name });
      setRenaming(false);
      props.onChange();
    });
  const remove = () =>
    void action.run(async () => {
      await admin("DELETE", `/apps/${app.application_id}`);
      props.onChange();
    });
  return (
    <tr>
      <td>
        {renaming ? (
          <NameForm
            label={`New name of ${app.name}`}
            initial={app.name}
            submit={() => "Save"}
            busy={action.busy}
            onSubmit={rename}
            onCancel={() => setRenaming(false)}
          />
        ) : (
          <a href={href("apps", app.application_id)}>{app.name}</a>
        )}
        <Feedback error={action.error} />
      </td>
      <td>{app.owner ? app.owner.email : <span class="muted">none</span>}</td>
      <td>{roleLabel(app.caller_role)}</td>
      <td class="actions">
        {canManage(app) && !renaming ? (
          <button type="button" class="secondary" onClick={() => setRenaming(true)} aria-label={`Rename ${app.name}`}>
            Rename
          </button>
        ) : null}
        {app.caller_role === "APPLICATION_ROLE_OWNER" ? (
          <ConfirmButton
            label="Delete"
            ariaLabel={`Delete ${app.name}`}
            confirmLabel={`Delete ${app.name} and all its services`}
            danger
            onConfirm={remove}
          />
        ) : null}
      </td>
    </tr>
  );
}
