// A photo with its faces drawn over it: boxes and landmarks in SVG (in the photo's own pixel
// coordinates), labels as positioned DOM text, and the same facts as a list below.

import { useEffect, useState } from "preact/hooks";
import type { Face } from "../types";

export interface DrawnFace {
  face: Face;
  /** The main label: a subject, "unknown", or a similarity. */
  label: string;
  /** Whether the label names a match (drawn in the match colour). */
  matched: boolean;
}

/** An object URL for a picked file, revoked when the file changes. */
export function useFileUrl(file: File | null): string | null {
  const [url, setUrl] = useState<string | null>(null);
  useEffect(() => {
    if (!file) {
      setUrl(null);
      return;
    }
    const next = URL.createObjectURL(file);
    setUrl(next);
    return () => URL.revokeObjectURL(next);
  }, [file]);
  return url;
}

function percent(value: number, of: number): string {
  return `${((value / of) * 100).toFixed(3)}%`;
}

export function FacePhoto(props: { url: string; name: string; faces: DrawnFace[]; caption: string }) {
  // The photo's own size, known once it has loaded (kept with its URL: a new photo's overlay
  // waits for the new size).
  const [loaded, setLoaded] = useState<{ url: string; w: number; h: number } | null>(null);
  const size = loaded?.url === props.url ? loaded : null;
  const { faces } = props;
  const summary = faces.length === 1 ? "1 face" : `${faces.length} faces`;
  return (
    <figure class="face-photo">
      <div class="frame">
        <img
          src={props.url}
          alt={`${props.name}: ${summary}${faces.length ? ` (${faces.map((f) => f.label).join(", ")})` : ""}`}
          onLoad={(e) =>
            setLoaded({ url: props.url, w: e.currentTarget.naturalWidth, h: e.currentTarget.naturalHeight })
          }
        />
        {size ? (
          <>
            <svg
              class="overlay"
              viewBox={`0 0 ${size.w} ${size.h}`}
              preserveAspectRatio="none"
              aria-hidden="true"
              data-testid="overlay"
              data-width={size.w}
              data-height={size.h}
            >
              {faces.map((d, i) => {
                const b = d.face.box;
                return (
                  <g key={i} class={d.matched ? "face matched" : "face"} data-index={i}>
                    <rect
                      data-testid="face-box"
                      data-index={i}
                      x={b.x_min}
                      y={b.y_min}
                      width={b.x_max - b.x_min}
                      height={b.y_max - b.y_min}
                      class="box-outline"
                    />
                    <rect
                      x={b.x_min}
                      y={b.y_min}
                      width={b.x_max - b.x_min}
                      height={b.y_max - b.y_min}
                      class="box"
                    />
                    {(d.face.landmarks ?? []).map((p, j) => (
                      <circle key={j} cx={p[0]} cy={p[1]} r={Math.max(size.w, size.h) / 250} class="landmark" />
                    ))}
                  </g>
                );
              })}
            </svg>
            {faces.map((d, i) => {
              const b = d.face.box;
              return (
                <span
                  key={i}
                  class={d.matched ? "face-label matched" : "face-label"}
                  data-testid="face-label"
                  data-index={i}
                  style={
                    // labels of faces in the right half end at the box's right edge, so that
                    // none runs off the photo
                    b.x_min + b.x_max > size.w
                      ? { right: percent(size.w - b.x_max, size.w), top: percent(b.y_max, size.h) }
                      : { left: percent(b.x_min, size.w), top: percent(b.y_max, size.h) }
                  }
                  aria-hidden="true"
                >
                  {d.label}
                </span>
              );
            })}
          </>
        ) : null}
      </div>
      <figcaption>{props.caption}</figcaption>
    </figure>
  );
}

function round(value: number, digits = 2): string {
  return value.toFixed(digits);
}

/** The faces as text: every attribute the API returned. */
export function FaceList(props: { faces: DrawnFace[]; label: string }) {
  if (props.faces.length === 0) return <p>No face found.</p>;
  return (
    <ol class="face-list" aria-label={props.label}>
      {props.faces.map((d, i) => {
        const f = d.face;
        const b = f.box;
        return (
          <li key={i} data-testid="face-item">
            <strong>
              Face {i + 1}: {d.label}
            </strong>
            <dl>
              <dt>Box</dt>
              <dd>
                x {b.x_min}–{b.x_max}, y {b.y_min}–{b.y_max} (detector {round(b.probability, 3)})
              </dd>
              {f.subjects && f.subjects.length > 1 ? (
                <>
                  <dt>Candidates</dt>
                  <dd>{f.subjects.map((s) => `${s.subject} ${round(s.similarity, 3)}`).join(", ")}</dd>
                </>
              ) : null}
              {f.age ? (
                <>
                  <dt>Age</dt>
                  <dd>
                    {f.age.low}–{f.age.high} years
                  </dd>
                </>
              ) : null}
              {f.gender ? (
                <>
                  <dt>Gender</dt>
                  <dd>
                    {f.gender.value} ({Math.round(f.gender.probability * 100)}%)
                  </dd>
                </>
              ) : null}
              {f.pose ? (
                <>
                  <dt>Pose</dt>
                  <dd>
                    pitch {round(f.pose.pitch, 1)}°, roll {round(f.pose.roll, 1)}°, yaw{" "}
                    {round(f.pose.yaw, 1)}°
                  </dd>
                </>
              ) : null}
              {f.mask ? (
                <>
                  <dt>Mask</dt>
                  <dd>{f.mask.value}</dd>
                </>
              ) : null}
              {f.landmarks && f.landmarks.length ? (
                <>
                  <dt>Landmarks</dt>
                  <dd>{f.landmarks.map((p) => `(${Math.round(p[0])}, ${Math.round(p[1])})`).join(" ")}</dd>
                </>
              ) : null}
            </dl>
          </li>
        );
      })}
    </ol>
  );
}
