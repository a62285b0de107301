// Re-computing a collection's stored faces with another calculator, with its progress.

import { useEffect, useState } from "preact/hooks";
import { admin } from "../api";
import type { Application, Migration as MigrationT, Service } from "../types";
import { canManage, enumLabel } from "../types";
import { ConfirmButton, Feedback, formatDate, useAction } from "../ui";

const POLL_MS = 1000;
/** Suggestions only: embed_svc's calculators as shipped (an unknown name is refused by the API). */
const KNOWN_CALCULATORS = ["dlib-resnet-v1", "mobileface", "faceres-deep"];

export function Migration(props: { app: Application; service: Service; onChanged: () => void }) {
  const { service } = props;
  const base = `/apps/${service.application_id}/services/${service.service_id}/migrations`;
  const [calculator, setCalculator] = useState("");
  const [migration, setMigration] = useState<MigrationT | null>(service.latest_migration ?? null);
  const action = useAction();
  const running = migration?.status === "MIGRATION_STATUS_RUNNING";

  useEffect(() => {
    if (!running || !migration) return;
    const timer = window.setTimeout(() => {
      admin<{ migration: MigrationT }>("GET", `${base}/${migration.migration_id}`)
        .then((r) => {
          setMigration(r.migration);
          if (r.migration.status !== "MIGRATION_STATUS_RUNNING") props.onChanged();
        })
        .catch(() => setMigration({ ...migration }));
    }, POLL_MS);
    return () => window.clearTimeout(timer);
  }, [migration]);

  const start = () =>
    void action.run(async () => {
      const r = await admin<{ migration: MigrationT }>("POST", base, { calculator: calculator.trim() });
      setMigration(r.migration);
      return `Migration to ${r.migration.target_calculator} started.`;
    });
  const handled = migration ? migration.migrated_count + migration.skipped_count + migration.failed_count : 0;
  return (
    <section aria-labelledby="migration-heading">
      <h2 id="migration-heading">Migrate to another calculator</h2>
      <p>
        This collection's faces are compared with embeddings of calculator{" "}
        <strong class="mono">{service.calculator || "(embed_svc's default)"}</strong>. A migration
        re-computes every stored face that has its photo with another calculator; the collection is
        read-only while it runs.
      </p>
      {canManage(props.app) ? (
        <div class="row">
          <label>
            Target calculator (empty: embed_svc's default)
            <input
              class="mono"
              list="calculator-names"
              value={calculator}
              onInput={(e) => setCalculator(e.currentTarget.value)}
            />
          </label>
          <datalist id="calculator-names">
            {KNOWN_CALCULATORS.map((name) => (
              <option key={name} value={name} />
            ))}
          </datalist>
          <ConfirmButton
            label="Start migration"
            confirmLabel="Re-compute every face now"
            disabled={running || action.busy}
            onConfirm={start}
          />
        </div>
      ) : null}
      <Feedback error={action.error} done={action.done} />
      {migration ? (
        <div class="migration" data-testid="migration">
          <h3>
            {running ? "Running" : "Latest"} migration: {enumLabel(migration.status, "MIGRATION_STATUS_")}
          </h3>
          <label for="migration-progress">
            {handled} of {migration.total_count} faces handled
          </label>
          <progress id="migration-progress" max={Math.max(migration.total_count, 1)} value={handled} />
          <dl>
            <dt>Target</dt>
            <dd class="mono">{migration.target_calculator}</dd>
            <dt>Re-computed</dt>
            <dd>{migration.migrated_count}</dd>
            <dt>Skipped (no photo stored)</dt>
            <dd>{migration.skipped_count}</dd>
            <dt>Failed (photo refused)</dt>
            <dd>{migration.failed_count}</dd>
            <dt>Started</dt>
            <dd>{formatDate(migration.create_time)}</dd>
            {migration.end_time ? (
              <>
                <dt>Ended</dt>
                <dd>{formatDate(migration.end_time)}</dd>
              </>
            ) : null}
          </dl>
          {migration.error_message ? (
            <p class="error" role="alert">
              {migration.error_message}
            </p>
          ) : null}
        </div>
      ) : (
        <p class="muted">No migration yet.</p>
      )}
    </section>
  );
}
