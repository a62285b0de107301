// One service: its key, and a page per task (collection, playground, statistics, migration).

import { admin } from "../api";
import { Collection } from "../components/Collection";
import { Migration } from "../components/Migration";
import { Playground } from "../components/Playground";
import { Statistics } from "../components/Statistics";
import { href } from "../router";
import type { Application, Service } from "../types";
import { typeLabel } from "../types";
import { Feedback, Loading, PageTitle, useLoad } from "../ui";
import { ApiKey } from "./App";

const TABS: { id: string; label: string; recognitionOnly: boolean }[] = [
  { id: "collection", label: "Collection", recognitionOnly: true },
  { id: "playground", label: "Playground", recognitionOnly: false },
  { id: "statistics", label: "Statistics", recognitionOnly: false },
  { id: "migration", label: "Migration", recognitionOnly: true },
];

export function ServicePage(props: { appId: string; serviceId: string; tab: string }) {
  const loaded = useLoad(
    () =>
      Promise.all([
        admin<{ application: Application }>("GET", `/apps/${props.appId}`),
        admin<{ service: Service }>("GET", `/apps/${props.appId}/services/${props.serviceId}`),
      ]).then(([a, s]) => ({ app: a.application, service: s.service })),
    [props.appId, props.serviceId],
  );
  if (!loaded.data) {
    return (
      <section>
        <PageTitle title="Service">Service</PageTitle>
        {loaded.error ? <Feedback error={loaded.error} /> : <Loading what="the service" />}
      </section>
    );
  }
  const { app, service } = loaded.data;
  const recognition = service.type === "SERVICE_TYPE_RECOGNITION";
  const tabs = TABS.filter((t) => recognition || !t.recognitionOnly);
  const tab = tabs.find((t) => t.id === props.tab) ?? tabs[0];
  const setService = (next: Service) => loaded.setData({ app, service: next });
  return (
    <section>
      <nav aria-label="Breadcrumb" class="crumbs">
        <a href="#/apps">Applications</a> /{" "}
        <a href={href("apps", app.application_id)}>{app.name}</a> /{" "}
        <span aria-current="page">{service.name}</span>
      </nav>
      <PageTitle title={`${service.name}: ${tab.label}`}>
        {service.name} <span class={`badge ${service.type}`}>{typeLabel(service.type)}</span>
      </PageTitle>
      <ApiKey app={app} service={service} onRotated={setService} />
      <nav class="tabs" aria-label="Service pages">
        {tabs.map((t) => (
          <a
            key={t.id}
            href={href("apps", app.application_id, "services", service.service_id, t.id)}
            aria-current={t.id === tab.id ? "page" : undefined}
          >
            {t.label}
          </a>
        ))}
      </nav>
      {tab.id === "collection" ? (
        <Collection app={app} service={service} onChanged={loaded.reload} />
      ) : null}
      {tab.id === "playground" ? <Playground service={service} /> : null}
      {tab.id === "statistics" ? <Statistics service={service} /> : null}
      {tab.id === "migration" ? (
        <Migration app={app} service={service} onChanged={loaded.reload} />
      ) : null}
    </section>
  );
}
