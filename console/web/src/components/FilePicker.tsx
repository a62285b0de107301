// Picking photos: the native file input (keyboard and screen readers), or dropping files on it.

import { useState } from "preact/hooks";

let counter = 0;

export function FilePicker(props: {
  label: string;
  multiple?: boolean;
  disabled?: boolean;
  files: File[];
  onFiles: (files: File[]) => void;
}) {
  const [id] = useState(() => `file-${++counter}`);
  const [over, setOver] = useState(false);
  const take = (list: FileList | null | undefined) => {
    const images = Array.from(list ?? []).filter((f) => f.type.startsWith("image/") || f.type === "");
    props.onFiles(props.multiple ? images : images.slice(0, 1));
  };
  return (
    <div
      class={`drop${over ? " over" : ""}`}
      onDragOver={(e) => {
        e.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={(e) => {
        e.preventDefault();
        setOver(false);
        if (!props.disabled) take(e.dataTransfer?.files);
      }}
    >
      <label for={id}>{props.label}</label>
      <input
        id={id}
        type="file"
        accept="image/*"
        multiple={props.multiple}
        disabled={props.disabled}
        onChange={(e) => {
          take(e.currentTarget.files);
          e.currentTarget.value = "";
        }}
      />
      <p class="muted">
        {props.files.length === 0
          ? `Pick ${props.multiple ? "photos" : "a photo"}, or drop ${props.multiple ? "them" : "it"} here.`
          : props.files.length === 1
            ? `Chosen: ${props.files[0].name}`
            : `Chosen: ${props.files.length} photos`}
      </p>
    </div>
  );
}
