// Trying a service on photos: recognition and detection on one photo, verification of two
// photos side by side; the faces drawn on the photos, the JSON answer and the same call as curl.

import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import type { FaceAnswer } from "../api";
import { faceApi } from "../api";
import type { Face, Service } from "../types";
import { CopyButton, Feedback, Scroll, useAction } from "../ui";
import type { DrawnFace } from "./FacePhoto";
import { FaceList, FacePhoto, useFileUrl } from "./FacePhoto";
import { FilePicker } from "./FilePicker";

const PLUGINS = ["age", "gender", "pose", "landmarks"] as const;

interface Call {
  path: string;
  query: Record<string, string>;
  parts: { name: string; file: File }[];
}

/** The equivalent curl command of a call (the key and file names as given). */
export function curlCommand(call: Call, apiKey: string): string {
  const query = new URLSearchParams(call.query).toString().replace(/%2C/g, ",");
  const url = `${window.location.origin}${call.path}${query ? `?${query}` : ""}`;
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const lines = [`curl -X POST ${quote(url)}`, `-H ${quote(`x-api-key: ${apiKey}`)}`];
  for (const part of call.parts) lines.push(`-F ${quote(`${part.name}=@${part.file.name}`)}`);
  return lines.join(" \\\n     ");
}

/** Indented JSON with arrays of numbers (landmarks, embeddings) kept on one line. */
export function prettyJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(/\[\s*(-?[\d.e+-]+(?:,\s*-?[\d.e+-]+)*)\s*\]/g, (_, items: string) =>
    `[${items.split(/,\s*/).join(", ")}]`,
  );
}

function Options(props: {
  plugins: Set<string>;
  onPlugins: (p: Set<string>) => void;
  children?: ComponentChildren;
}) {
  return (
    <fieldset class="options">
      <legend>Options</legend>
      <div class="row">
        {PLUGINS.map((p) => (
          <label key={p} class="check">
            <input
              type="checkbox"
              checked={props.plugins.has(p)}
              onChange={() => {
                const next = new Set(props.plugins);
                if (next.has(p)) next.delete(p);
                else next.add(p);
                props.onPlugins(next);
              }}
            />
            {p}
          </label>
        ))}
      </div>
      {props.children}
    </fieldset>
  );
}

function Answer(props: { answer: FaceAnswer<unknown> | null; curl: string | null }) {
  return (
    <div class="answer">
      <section aria-labelledby="json-heading">
        <h3 id="json-heading">
          JSON answer{" "}
          {props.answer ? (
            <span class="muted">
              (HTTP {props.answer.status}, {Math.round(props.answer.elapsedMs)} ms)
            </span>
          ) : null}
        </h3>
        <Scroll label="JSON answer" tall>
          <pre class="json" data-testid="json-answer">
            {props.answer ? prettyJson(props.answer.data) : "Pick a photo to see the answer."}
          </pre>
        </Scroll>
      </section>
      {props.curl ? (
        <section aria-labelledby="curl-heading">
          <h3 id="curl-heading">The same call with curl</h3>
          <Scroll label="curl command">
            <pre class="curl" data-testid="curl">
              {props.curl}
            </pre>
          </Scroll>
          <CopyButton text={props.curl} label="Copy curl command" />
        </section>
      ) : null}
    </div>
  );
}

export function Playground(props: { service: Service }) {
  if (props.service.type === "SERVICE_TYPE_VERIFICATION") return <VerifyPlayground service={props.service} />;
  return <OnePhotoPlayground service={props.service} />;
}

function recognitionLabel(face: Face): DrawnFace {
  const best = face.subjects?.[0];
  if (!best) return { face, label: "unknown", matched: false };
  return { face, label: `${best.subject} ${best.similarity.toFixed(2)}`, matched: true };
}

function OnePhotoPlayground(props: { service: Service }) {
  const { service } = props;
  const recognition = service.type === "SERVICE_TYPE_RECOGNITION";
  const [file, setFile] = useState<File | null>(null);
  const [plugins, setPlugins] = useState<Set<string>>(new Set(PLUGINS));
  const [threshold, setThreshold] = useState("0.5");
  const [predictions, setPredictions] = useState("1");
  const [answer, setAnswer] = useState<FaceAnswer<{ result: Face[] }> | null>(null);
  const [call, setCall] = useState<Call | null>(null);
  const action = useAction();
  const url = useFileUrl(file);

  const run = (photo: File) => {
    const query: Record<string, string> = { face_plugins: [...plugins].join(",") };
    if (recognition) {
      query.prediction_count = predictions || "1";
      query.rank_by_subject = "true";
      if (threshold.trim()) query.similarity_threshold = threshold.trim();
    }
    const path = recognition ? "/api/v1/recognition/recognize" : "/api/v1/detection/detect";
    const next: Call = { path, query, parts: [{ name: "file", file: photo }] };
    setCall(next);
    setAnswer(null);
    void action.run(async () => {
      const form = new FormData();
      form.append("file", photo, photo.name);
      setAnswer(await faceApi<{ result: Face[] }>("POST", path, service.api_key, { query, form }));
    });
  };
  const pick = (files: File[]) => {
    const photo = files[0] ?? null;
    setFile(photo);
    if (photo) run(photo);
  };
  const faces: DrawnFace[] = (answer?.data.result ?? []).map((face, i) =>
    recognition
      ? recognitionLabel(face)
      : { face, label: `face ${i + 1} (${face.box.probability.toFixed(2)})`, matched: false },
  );
  return (
    <section aria-labelledby="playground-heading">
      <h2 id="playground-heading">{recognition ? "Recognize faces" : "Detect faces"}</h2>
      <form
        class="stack"
        onSubmit={(e) => {
          e.preventDefault();
          if (file) run(file);
        }}
      >
        <FilePicker label="Photo" files={file ? [file] : []} onFiles={pick} />
        <Options plugins={plugins} onPlugins={setPlugins}>
          {recognition ? (
            <div class="row">
              <label>
                Similarity threshold (0–1; empty: none)
                <input
                  type="number"
                  min="0"
                  max="1"
                  step="0.05"
                  value={threshold}
                  onInput={(e) => setThreshold(e.currentTarget.value)}
                />
              </label>
              <label>
                Subjects per face
                <input
                  type="number"
                  min="1"
                  max="10"
                  value={predictions}
                  onInput={(e) => setPredictions(e.currentTarget.value)}
                />
              </label>
            </div>
          ) : null}
        </Options>
        <button type="submit" class="primary" disabled={!file || action.busy}>
          {recognition ? "Recognize" : "Detect"} again
        </button>
      </form>
      <Feedback error={action.error} />
      <p role="status" class="muted">
        {action.busy ? "Working…" : answer ? `${faces.length} faces found.` : ""}
      </p>
      <div class="result">
        {url && file ? (
          <div>
            <FacePhoto url={url} name={file.name} faces={faces} caption={file.name} />
            <FaceList faces={faces} label={`Faces of ${file.name}`} />
          </div>
        ) : null}
        <Answer answer={answer} curl={call ? curlCommand(call, service.api_key) : null} />
      </div>
    </section>
  );
}

interface Verification {
  result: { source_image_face: Face; face_matches: Face[] }[];
}

function VerifyPlayground(props: { service: Service }) {
  const { service } = props;
  const [source, setSource] = useState<File | null>(null);
  const [target, setTarget] = useState<File | null>(null);
  const [plugins, setPlugins] = useState<Set<string>>(new Set(PLUGINS));
  const [answer, setAnswer] = useState<FaceAnswer<Verification> | null>(null);
  const [call, setCall] = useState<Call | null>(null);
  const action = useAction();
  const sourceUrl = useFileUrl(source);
  const targetUrl = useFileUrl(target);

  const run = () => {
    if (!source || !target) return;
    const path = "/api/v1/verification/verify";
    const query = { face_plugins: [...plugins].join(",") };
    setCall({
      path,
      query,
      parts: [
        { name: "source_image", file: source },
        { name: "target_image", file: target },
      ],
    });
    setAnswer(null);
    void action.run(async () => {
      const form = new FormData();
      form.append("source_image", source, source.name);
      form.append("target_image", target, target.name);
      setAnswer(await faceApi<Verification>("POST", path, service.api_key, { query, form }));
    });
  };
  useEffect(run, [source, target]);
  const result = answer?.data.result[0];
  const sourceFaces: DrawnFace[] = result
    ? [{ face: result.source_image_face, label: "source face", matched: false }]
    : [];
  const targetFaces: DrawnFace[] = (result?.face_matches ?? []).map((face) => ({
    face,
    label: `similarity ${(face.similarity ?? 0).toFixed(2)}`,
    matched: (face.similarity ?? 0) >= 0.5,
  }));
  return (
    <section aria-labelledby="playground-heading">
      <h2 id="playground-heading">Verify two photos</h2>
      <p class="muted">
        The one face of the source photo is compared with every face of the target photo
        (similarity 0–1; 0.5 is the calculator's equal-error threshold).
      </p>
      <form
        class="stack"
        onSubmit={(e) => {
          e.preventDefault();
          run();
        }}
      >
        <div class="pair">
          <FilePicker label="Source photo (one face)" files={source ? [source] : []} onFiles={(f) => setSource(f[0] ?? null)} />
          <FilePicker label="Target photo" files={target ? [target] : []} onFiles={(f) => setTarget(f[0] ?? null)} />
        </div>
        <Options plugins={plugins} onPlugins={setPlugins} />
        <button type="submit" class="primary" disabled={!source || !target || action.busy}>
          Verify again
        </button>
      </form>
      <Feedback error={action.error} />
      <p role="status" class="muted">
        {action.busy
          ? "Working…"
          : result
            ? `Best similarity: ${Math.max(0, ...targetFaces.map((f) => f.face.similarity ?? 0)).toFixed(2)}`
            : ""}
      </p>
      <div class="pair">
        {sourceUrl && source ? (
          <div data-testid="verify-source">
            <FacePhoto url={sourceUrl} name={source.name} faces={sourceFaces} caption={`Source: ${source.name}`} />
          </div>
        ) : null}
        {targetUrl && target ? (
          <div data-testid="verify-target">
            <FacePhoto url={targetUrl} name={target.name} faces={targetFaces} caption={`Target: ${target.name}`} />
            <FaceList faces={targetFaces} label={`Faces of ${target.name}`} />
          </div>
        ) : null}
      </div>
      <Answer answer={answer} curl={call ? curlCommand(call, service.api_key) : null} />
    </section>
  );
}
