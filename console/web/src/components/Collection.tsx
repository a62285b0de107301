// A recognition service's collection: subjects with their photo counts, search, rename or
// merge, delete; each subject's example photos as thumbnails; uploading many photos at once.

import { useEffect, useMemo, useState } from "preact/hooks";
import { faceApi, faceImage, messageOf } from "../api";
import type { Application, FacePage, Service } from "../types";
import { canManage } from "../types";
import { ConfirmButton, Feedback, Loading, NameForm, Scroll, useAction, useLoad } from "../ui";
import { FilePicker } from "./FilePicker";

const RECOGNITION = "/api/v1/recognition";
const PAGE = 25;
/** Uploads in flight at once. */
const PARALLEL = 2;

export function Collection(props: { app: Application; service: Service; onChanged: () => void }) {
  const key = props.service.api_key;
  const subjects = useLoad(
    () => faceApi<{ subjects: string[] }>("GET", `${RECOGNITION}/subjects`, key).then((r) => r.data.subjects),
    [key],
  );
  const [search, setSearch] = useState("");
  const [shown, setShown] = useState(PAGE);
  const [open, setOpen] = useState<string | null>(null);
  const [generation, setGeneration] = useState(0);
  const changed = () => {
    subjects.reload();
    setGeneration((g) => g + 1);
    props.onChanged();
  };
  const matching = useMemo(() => {
    const needle = search.trim().toLowerCase();
    return (subjects.data ?? []).filter((s) => s.toLowerCase().includes(needle));
  }, [subjects.data, search]);
  const writable = canManage(props.app) && !props.service.writes_blocked;
  return (
    <>
      {props.service.writes_blocked ? (
        <p class="notice" role="status">
          A migration is running: the collection is read-only until it ends.
        </p>
      ) : null}
      <Upload service={props.service} subjects={subjects.data ?? []} onUploaded={changed} disabled={!writable} />
      <section aria-labelledby="subjects-heading">
        <h2 id="subjects-heading">Subjects</h2>
        <div class="row">
          <label>
            Search subjects
            <input type="search" value={search} onInput={(e) => { setSearch(e.currentTarget.value); setShown(PAGE); }} />
          </label>
          <p class="muted" role="status">
            {subjects.data ? `${matching.length} of ${subjects.data.length} subjects` : ""}
          </p>
        </div>
        <Feedback error={subjects.error} />
        {subjects.loading && !subjects.data ? <Loading what="subjects" /> : null}
        {subjects.data && subjects.data.length === 0 ? (
          <p>No subject yet: upload photos above.</p>
        ) : null}
        {matching.length > 0 ? (
          <Scroll label="Subjects">
            <table class="subjects">
              <thead>
                <tr>
                  <th scope="col">Subject</th>
                  <th scope="col">Photos</th>
                  <th scope="col">Actions</th>
                </tr>
              </thead>
              <tbody>
                {matching.slice(0, shown).map((subject) => (
                  <SubjectRow
                    key={`${subject}/${generation}`}
                    subject={subject}
                    apiKey={key}
                    existing={subjects.data ?? []}
                    writable={writable}
                    open={open === subject}
                    onToggle={() => setOpen(open === subject ? null : subject)}
                    onChanged={changed}
                  />
                ))}
              </tbody>
            </table>
          </Scroll>
        ) : null}
        {matching.length > shown ? (
          <button type="button" class="secondary" onClick={() => setShown(shown + PAGE)}>
            Show {Math.min(PAGE, matching.length - shown)} more subjects
          </button>
        ) : null}
      </section>
      {open ? (
        <SubjectPhotos
          key={`${open}/${generation}`}
          subject={open}
          apiKey={key}
          writable={writable}
          onChanged={changed}
        />
      ) : null}
    </>
  );
}

function Upload(props: {
  service: Service;
  subjects: string[];
  onUploaded: () => void;
  disabled: boolean;
}) {
  const [subject, setSubject] = useState("");
  const [files, setFiles] = useState<File[]>([]);
  const [done, setDone] = useState(0);
  const [total, setTotal] = useState(0);
  const [failures, setFailures] = useState<string[]>([]);
  const action = useAction();
  const upload = (event: Event) => {
    event.preventDefault();
    const name = subject.trim();
    const batch = files;
    setDone(0);
    setTotal(batch.length);
    setFailures([]);
    void action.run(async () => {
      let next = 0;
      let finished = 0;
      const failed: string[] = [];
      const worker = async () => {
        while (next < batch.length) {
          const file = batch[next++];
          const form = new FormData();
          form.append("file", file, file.name);
          try {
            await faceApi("POST", `${RECOGNITION}/faces`, props.service.api_key, {
              query: { subject: name },
              form,
            });
          } catch (e) {
            failed.push(`${file.name}: ${messageOf(e)}`);
          }
          finished += 1;
          setDone(finished);
        }
      };
      await Promise.all(Array.from({ length: Math.min(PARALLEL, batch.length) }, worker));
      setFailures(failed);
      setFiles([]);
      props.onUploaded();
      const added = batch.length - failed.length;
      return `${added} of ${batch.length} photos added to ${name}.`;
    });
  };
  return (
    <section aria-labelledby="upload-heading">
      <h2 id="upload-heading">Add photos</h2>
      <form onSubmit={upload} class="stack">
        <label>
          Subject (new or existing)
          <input
            required
            maxLength={50}
            list="subject-names"
            value={subject}
            disabled={props.disabled}
            onInput={(e) => setSubject(e.currentTarget.value)}
          />
        </label>
        <datalist id="subject-names">
          {props.subjects.map((s) => (
            <option key={s} value={s} />
          ))}
        </datalist>
        <FilePicker
          label="Photos, one face each"
          multiple
          disabled={props.disabled}
          files={files}
          onFiles={setFiles}
        />
        <button type="submit" class="primary" disabled={props.disabled || action.busy || files.length === 0}>
          Upload {files.length || ""} {files.length === 1 ? "photo" : "photos"}
        </button>
        {action.busy || done > 0 ? (
          <div class="progress">
            <label for="upload-progress">Upload progress</label>
            <progress id="upload-progress" max={Math.max(total, 1)} value={done} />
            <span class="muted">
              {done} of {total} done
            </span>
          </div>
        ) : null}
      </form>
      <Feedback error={action.error} done={action.done} />
      {failures.length > 0 ? (
        <div role="alert" class="error">
          <p>These photos were not added:</p>
          <ul>
            {failures.map((f) => (
              <li key={f}>{f}</li>
            ))}
          </ul>
        </div>
      ) : null}
    </section>
  );
}

function SubjectRow(props: {
  subject: string;
  apiKey: string;
  existing: string[];
  writable: boolean;
  open: boolean;
  onToggle: () => void;
  onChanged: () => void;
}) {
  const { subject } = props;
  const count = useLoad(
    () =>
      faceApi<FacePage>("GET", `${RECOGNITION}/faces`, props.apiKey, {
        query: { subject, size: "1" },
      }).then((r) => r.data.total_elements),
    [subject, props.apiKey],
  );
  const [renaming, setRenaming] = useState(false);
  const action = useAction();
  const rename = (name: string) =>
    void action.run(async () => {
      await faceApi("PUT", `${RECOGNITION}/subjects/${encodeURIComponent(subject)}`, props.apiKey, {
        json: { subject: name },
      });
      setRenaming(false);
      props.onChanged();
    });
  const remove = () =>
    void action.run(async () => {
      await faceApi("DELETE", `${RECOGNITION}/subjects/${encodeURIComponent(subject)}`, props.apiKey);
      props.onChanged();
    });
  return (
    <tr data-subject={subject}>
      <th scope="row">
        {renaming ? (
          <NameForm
            label={`New name of ${subject}`}
            initial={subject}
            submit={(name) => (name !== subject && props.existing.includes(name) ? `Merge into ${name}` : "Rename")}
            busy={action.busy}
            onSubmit={rename}
            onCancel={() => setRenaming(false)}
          />
        ) : (
          subject
        )}
        <Feedback error={action.error} />
      </th>
      <td data-testid="subject-count">{count.data ?? (count.error ? "?" : "…")}</td>
      <td class="actions">
        <button type="button" class="secondary" aria-expanded={props.open} onClick={props.onToggle} aria-label={`${props.open ? "Hide photos" : "Photos"} of ${subject}`}>
          {props.open ? "Hide photos" : "Photos"}
        </button>
        {props.writable && !renaming ? (
          <button type="button" class="secondary" onClick={() => setRenaming(true)} aria-label={`Rename or merge ${subject}`}>
            Rename
          </button>
        ) : null}
        {props.writable ? (
          <ConfirmButton
            label="Delete"
            ariaLabel={`Delete ${subject}`}
            confirmLabel={`Delete ${subject} and all its photos`}
            danger
            onConfirm={remove}
          />
        ) : null}
      </td>
    </tr>
  );
}

function SubjectPhotos(props: {
  subject: string;
  apiKey: string;
  writable: boolean;
  onChanged: () => void;
}) {
  const { subject, apiKey } = props;
  const [page, setPage] = useState(0);
  const faces = useLoad(
    () =>
      faceApi<FacePage>("GET", `${RECOGNITION}/faces`, apiKey, {
        query: { subject, size: "48", page: String(page) },
      }).then((r) => r.data),
    [subject, apiKey, page],
  );
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const action = useAction();
  const toggle = (id: string) => {
    const next = new Set(selected);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setSelected(next);
  };
  const removeSelected = () =>
    void action.run(async () => {
      const ids = [...selected];
      await faceApi("POST", `${RECOGNITION}/faces/delete`, apiKey, { json: ids });
      setSelected(new Set());
      props.onChanged();
      return `${ids.length} photos deleted.`;
    });
  const removeOne = (id: string) =>
    void action.run(async () => {
      await faceApi("DELETE", `${RECOGNITION}/faces/${id}`, apiKey);
      props.onChanged();
      return "Photo deleted.";
    });
  const data = faces.data;
  return (
    <section aria-labelledby="photos-heading" class="photos">
      <h2 id="photos-heading">Photos of {subject}</h2>
      <Feedback error={action.error ?? faces.error} done={action.done} />
      {faces.loading && !data ? <Loading what="photos" /> : null}
      {props.writable && data && data.faces.length > 0 ? (
        <div class="row">
          <ConfirmButton
            label={`Delete selected (${selected.size})`}
            confirmLabel={`Delete ${selected.size} photos`}
            danger
            disabled={selected.size === 0}
            onConfirm={removeSelected}
          />
          <button
            type="button"
            class="secondary"
            onClick={() => setSelected(new Set(data.faces.map((f) => f.image_id)))}
          >
            Select all on this page
          </button>
        </div>
      ) : null}
      {data ? (
        <ul class="thumbs">
          {data.faces.map((face, i) => {
            const label = `Photo ${page * data.page_size + i + 1} of ${subject}`;
            return (
              <li key={face.image_id}>
                <Thumb imageId={face.image_id} apiKey={apiKey} alt={label} />
                {props.writable ? (
                  <div class="row">
                    <label class="check">
                      <input
                        type="checkbox"
                        checked={selected.has(face.image_id)}
                        onChange={() => toggle(face.image_id)}
                      />
                      <span class="sr-only">Select {label}</span>
                      <span aria-hidden="true">Select</span>
                    </label>
                    <button type="button" class="link danger-text" aria-label={`Delete ${label}`} onClick={() => removeOne(face.image_id)}>
                      Delete
                    </button>
                  </div>
                ) : null}
              </li>
            );
          })}
        </ul>
      ) : null}
      {data && data.total_pages > 1 ? (
        <nav class="row" aria-label="Photo pages">
          <button type="button" class="secondary" disabled={page === 0} onClick={() => setPage(page - 1)}>
            Previous page
          </button>
          <span>
            Page {page + 1} of {data.total_pages}
          </span>
          <button type="button" class="secondary" disabled={page + 1 >= data.total_pages} onClick={() => setPage(page + 1)}>
            Next page
          </button>
        </nav>
      ) : null}
    </section>
  );
}

/** A stored example image, fetched with the API key and shown from a blob URL. */
export function Thumb(props: { imageId: string; apiKey: string; alt: string }) {
  const [url, setUrl] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let objectUrl: string | null = null;
    let live = true;
    faceImage(props.imageId, props.apiKey)
      .then((blob) => {
        if (!live) return;
        objectUrl = URL.createObjectURL(blob);
        setUrl(objectUrl);
      })
      .catch((e: unknown) => live && setError(messageOf(e)));
    return () => {
      live = false;
      if (objectUrl) URL.revokeObjectURL(objectUrl);
    };
  }, [props.imageId, props.apiKey]);
  if (error) return <span class="thumb error">{error}</span>;
  return url ? <img class="thumb" src={url} alt={props.alt} /> : <span class="thumb muted">…</span>;
}
