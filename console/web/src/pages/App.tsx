// One application: its services (face collections) with their API keys, and its members.

import { useEffect, useState } from "preact/hooks";
import { admin } from "../api";
import { href } from "../router";
import type { AppRole, Application, Member, Service, ServiceType } from "../types";
import { APP_ROLES, SERVICE_TYPES, canManage, memberRef, roleLabel, typeLabel } from "../types";
import {
  ConfirmButton,
  CopyButton,
  Feedback,
  Loading,
  NameForm,
  PageTitle,
  Scroll,
  useAction,
  useLoad,
} from "../ui";

export function AppPage(props: { appId: string }) {
  const app = useLoad(
    () =>
      admin<{ application: Application }>("GET", `/apps/${props.appId}`).then(
        (r) => r.application,
      ),
    [props.appId],
  );
  if (!app.data) {
    return (
      <section>
        <PageTitle title="Application">Application</PageTitle>
        {app.error ? <Feedback error={app.error} /> : <Loading what="the application" />}
      </section>
    );
  }
  return (
    <section>
      <nav aria-label="Breadcrumb" class="crumbs">
        <a href="#/apps">Applications</a> / <span aria-current="page">{app.data.name}</span>
      </nav>
      <PageTitle title={app.data.name}>{app.data.name}</PageTitle>
      <p class="muted">
        Your role: {roleLabel(app.data.caller_role)}
        {app.data.owner ? ` · owner ${app.data.owner.email}` : ""}
      </p>
      <Services app={app.data} />
      <Members app={app.data} />
    </section>
  );
}

function Services(props: { app: Application }) {
  const appId = props.app.application_id;
  const services = useLoad(
    () => admin<{ services: Service[] }>("GET", `/apps/${appId}/services`).then((r) => r.services),
    [appId],
  );
  const [name, setName] = useState("");
  const [type, setType] = useState<ServiceType>("SERVICE_TYPE_RECOGNITION");
  const action = useAction();
  const create = (event: Event) => {
    event.preventDefault();
    void action.run(async () => {
      const r = await admin<{ service: Service }>("POST", `/apps/${appId}/services`, {
        name,
        type,
      });
      setName("");
      services.reload();
      return `${typeLabel(r.service.type)} service "${r.service.name}" created.`;
    });
  };
  return (
    <section aria-labelledby="services-heading">
      <h2 id="services-heading">Services</h2>
      <p class="muted">
        Each service is one face collection with its own API key; its type decides which API
        paths the key may call.
      </p>
      {canManage(props.app) ? (
        <form onSubmit={create} class="row" aria-label="Create a service">
          <label>
            New service name
            <input required maxLength={50} value={name} onInput={(e) => setName(e.currentTarget.value)} />
          </label>
          <label>
            Type
            <select value={type} onChange={(e) => setType(e.currentTarget.value as ServiceType)}>
              {SERVICE_TYPES.map((t) => (
                <option key={t.value} value={t.value}>
                  {t.label}
                </option>
              ))}
            </select>
          </label>
          <button type="submit" class="primary" disabled={action.busy}>
            Create service
          </button>
        </form>
      ) : null}
      <Feedback error={action.error ?? services.error} done={action.done} />
      {services.loading && !services.data ? <Loading what="services" /> : null}
      {services.data && services.data.length === 0 ? <p>No service yet.</p> : null}
      <div class="cards">
        {services.data?.map((service) => (
          <ServiceCard
            key={service.service_id}
            app={props.app}
            service={service}
            onChange={services.reload}
          />
        ))}
      </div>
    </section>
  );
}

/** The service's API key with copy and rotate; shared by the card and the service page. */
export function ApiKey(props: {
  app: Application;
  service: Service;
  onRotated: (service: Service) => void;
}) {
  const { service } = props;
  const action = useAction();
  const inputId = `key-${service.service_id}`;
  const rotate = () =>
    void action.run(async () => {
      const r = await admin<{ service: Service }>(
        "POST",
        `/apps/${service.application_id}/services/${service.service_id}/api-key/rotate`,
        {},
      );
      props.onRotated(r.service);
      return "New API key issued: the old one no longer works.";
    });
  return (
    <div class="apikey">
      <label for={inputId}>API key of {service.name}</label>
      <div class="row">
        <input id={inputId} class="mono" readOnly value={service.api_key} data-testid="api-key" />
        <CopyButton text={service.api_key} label="Copy key" targetId={inputId} />
        {canManage(props.app) ? (
          <ConfirmButton
            label="Rotate key"
            ariaLabel={`Rotate key of ${service.name}`}
            confirmLabel="Issue a new key (the old one stops working)"
            onConfirm={rotate}
            disabled={action.busy}
          />
        ) : null}
      </div>
      <Feedback error={action.error} done={action.done} />
    </div>
  );
}

function ServiceCard(props: { app: Application; service: Service; onChange: () => void }) {
  const { app } = props;
  const [service, setService] = useState(props.service);
  useEffect(() => setService(props.service), [props.service]);
  const [mode, setMode] = useState<"" | "rename" | "clone">("");
  const action = useAction();
  const base = `/apps/${service.application_id}/services/${service.service_id}`;
  const headingId = `service-${service.service_id}`;
  const submit = (name: string) =>
    void action.run(async () => {
      if (mode === "rename") {
        const r = await admin<{ service: Service }>("PUT", base, { name });
        setService(r.service);
      } else {
        await admin<{ service: Service }>("POST", `${base}/clone`, { name });
        props.onChange();
      }
      setMode("");
    });
  const remove = () =>
    void action.run(async () => {
      await admin("DELETE", base);
      props.onChange();
    });
  const link = (tab: string) => href("apps", app.application_id, "services", service.service_id, tab);
  return (
    <article class="card" aria-labelledby={headingId}>
      <h3 id={headingId}>
        <a href={link("")}>{service.name}</a>{" "}
        <span class={`badge ${service.type}`}>{typeLabel(service.type)}</span>
      </h3>
      {service.type === "SERVICE_TYPE_RECOGNITION" ? (
        <p class="muted">
          {service.subject_count} subjects · {service.image_count} photos
          {service.writes_blocked ? " · migration running" : ""}
        </p>
      ) : null}
      <ApiKey app={app} service={service} onRotated={setService} />
      <nav class="row links" aria-label={`${service.name} pages`}>
        {service.type === "SERVICE_TYPE_RECOGNITION" ? (
          <a href={link("collection")}>Collection</a>
        ) : null}
        <a href={link("playground")}>Playground</a>
        <a href={link("statistics")}>Statistics</a>
        {service.type === "SERVICE_TYPE_RECOGNITION" ? (
          <a href={link("migration")}>Migration</a>
        ) : null}
      </nav>
      {canManage(app) ? (
        mode ? (
          <NameForm
            key={mode}
            label={mode === "rename" ? `New name of ${service.name}` : `Name of the copy of ${service.name}`}
            initial={mode === "rename" ? service.name : `${service.name} copy`}
            submit={() => (mode === "rename" ? "Save" : "Clone")}
            busy={action.busy}
            onSubmit={submit}
            onCancel={() => setMode("")}
          />
        ) : (
          <div class="row actions">
            <button type="button" class="secondary" onClick={() => setMode("rename")} aria-label={`Rename ${service.name}`}>
              Rename
            </button>
            <button type="button" class="secondary" onClick={() => setMode("clone")} aria-label={`Clone ${service.name}`}>
              Clone
            </button>
            <ConfirmButton
              label="Delete"
              ariaLabel={`Delete ${service.name}`}
              confirmLabel={`Delete ${service.name} and all its faces`}
              danger
              onConfirm={remove}
            />
          </div>
        )
      ) : null}
      <Feedback error={action.error} />
    </article>
  );
}

function Members(props: { app: Application }) {
  const appId = props.app.application_id;
  const members = useLoad(
    () => admin<{ members: Member[] }>("GET", `/apps/${appId}/members`).then((r) => r.members),
    [appId],
  );
  const [email, setEmail] = useState("");
  const [role, setRole] = useState<AppRole>("APPLICATION_ROLE_USER");
  const action = useAction();
  const manage = canManage(props.app);
  const path = (member: Member) => `/apps/${appId}/members/${encodeURIComponent(memberRef(member))}`;
  const add = (event: Event) => {
    event.preventDefault();
    void action.run(async () => {
      const address = email.trim();
      const r = await admin<{ member: Member }>("POST", `/apps/${appId}/members`, {
        email: address,
        role,
      });
      setEmail("");
      members.reload();
      return r.member.pending
        ? `${address} invited: they become a member when they sign up with this email.`
        : `${address} added.`;
    });
  };
  const changeRole = (member: Member, next: AppRole) =>
    void action.run(async () => {
      await admin("PUT", path(member), { role: next });
      members.reload();
      return `${member.user.email} is now ${roleLabel(next)}.`;
    });
  const remove = (member: Member) =>
    void action.run(async () => {
      await admin("DELETE", path(member));
      members.reload();
      return member.pending
        ? `The invitation of ${member.user.email} is revoked.`
        : `${member.user.email} removed.`;
    });
  return (
    <section aria-labelledby="members-heading">
      <h2 id="members-heading">Members</h2>
      {manage ? (
        <>
          <form onSubmit={add} class="row" aria-label="Add a member">
            <label>
              Email to add or invite
              <input
                type="email"
                required
                aria-describedby="invite-hint"
                value={email}
                onInput={(e) => setEmail(e.currentTarget.value)}
              />
            </label>
            <label>
              Role
              <select value={role} onChange={(e) => setRole(e.currentTarget.value as AppRole)}>
                {APP_ROLES.filter((r) => r.value !== "APPLICATION_ROLE_OWNER").map((r) => (
                  <option key={r.value} value={r.value}>
                    {r.label}
                  </option>
                ))}
              </select>
            </label>
            <button type="submit" class="primary" disabled={action.busy}>
              Add member
            </button>
          </form>
          <p id="invite-hint" class="muted">
            An email without an account is invited: it becomes a member, with this role, when
            that person signs up. An invitation's role cannot be changed; revoke it and invite
            again.
          </p>
        </>
      ) : null}
      <Feedback error={action.error ?? members.error} done={action.done} />
      {members.data ? (
        <Scroll label="Members">
          <table>
            <caption class="sr-only">Members of {props.app.name}</caption>
            <thead>
              <tr>
                <th scope="col">Email</th>
                <th scope="col">Name</th>
                <th scope="col">Role</th>
                <th scope="col">State</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {members.data.map((member) => (
                <MemberRow
                  key={`${member.pending ? "invited" : "member"}:${memberRef(member)}`}
                  member={member}
                  manage={manage}
                  busy={action.busy}
                  onRole={(next) => changeRole(member, next)}
                  onRemove={() => remove(member)}
                />
              ))}
            </tbody>
          </table>
        </Scroll>
      ) : null}
    </section>
  );
}

/** One member, or one pending invitation: only its email and role are known, and the API can
 * only revoke it (RemoveMember with the email), not change its role. */
function MemberRow(props: {
  member: Member;
  manage: boolean;
  busy: boolean;
  onRole: (next: AppRole) => void;
  onRemove: () => void;
}) {
  const { member } = props;
  const email = member.user.email;
  const editable = props.manage && member.role !== "APPLICATION_ROLE_OWNER";
  const removal = member.pending ? `Revoke invitation of ${email}` : `Remove ${email}`;
  return (
    <tr data-email={email} data-state={member.pending ? "invited" : "member"}>
      <td>{email}</td>
      <td>
        {member.pending ? (
          <span class="muted">no account yet</span>
        ) : (
          `${member.user.first_name} ${member.user.last_name}`
        )}
      </td>
      <td>
        {editable && !member.pending ? (
          <select
            aria-label={`Role of ${email}`}
            value={member.role}
            onChange={(e) => props.onRole(e.currentTarget.value as AppRole)}
          >
            {APP_ROLES.map((r) => (
              <option key={r.value} value={r.value}>
                {r.label}
              </option>
            ))}
          </select>
        ) : (
          roleLabel(member.role)
        )}
      </td>
      <td data-testid="member-state">
        {member.pending ? (
          <span class="badge pending">Invited</span>
        ) : (
          "Member"
        )}
      </td>
      <td>
        {editable ? (
          <ConfirmButton
            label={member.pending ? "Revoke invitation" : "Remove"}
            ariaLabel={removal}
            confirmLabel={removal}
            danger
            disabled={props.busy}
            onConfirm={props.onRemove}
          />
        ) : null}
      </td>
    </tr>
  );
}
