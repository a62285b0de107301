// Small shared pieces: loading state, errors, confirmations, copying, page titles.

import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { messageOf } from "./api";

export interface Loaded<T> {
  data: T | undefined;
  error: string | null;
  loading: boolean;
  reload: () => void;
  setData: (value: T) => void;
}

/** Runs `load` now and whenever `deps` change; `reload` runs it again. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [generation, setGeneration] = useState(0);
  useEffect(() => {
    let live = true;
    setLoading(true);
    load()
      .then((value) => {
        if (!live) return;
        setData(value);
        setError(null);
      })
      .catch((e: unknown) => live && setError(messageOf(e)))
      .finally(() => live && setLoading(false));
    return () => {
      live = false;
    };
  }, [...deps, generation]);
  const reload = useCallback(() => setGeneration((g) => g + 1), []);
  return { data, error, loading, reload, setData };
}

export interface Action {
  busy: boolean;
  error: string | null;
  done: string | null;
  run: (work: () => Promise<string | void>) => Promise<boolean>;
  clear: () => void;
}

/** A user action: busy while it runs, then its error or its success message. */
export function useAction(): Action {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const run = useCallback(async (work: () => Promise<string | void>) => {
    setBusy(true);
    setError(null);
    setDone(null);
    try {
      const message = await work();
      if (message) setDone(message);
      return true;
    } catch (e) {
      setError(messageOf(e));
      return false;
    } finally {
      setBusy(false);
    }
  }, []);
  const clear = useCallback(() => {
    setError(null);
    setDone(null);
  }, []);
  return { busy, error, done, run, clear };
}

/** The error (role alert) and success (polite status) lines of an action or a load. */
export function Feedback(props: { error?: string | null; done?: string | null }) {
  return (
    <>
      {props.error ? (
        <p class="error" role="alert">
          {props.error}
        </p>
      ) : null}
      <p class="done" role="status">
        {props.done ?? ""}
      </p>
    </>
  );
}

export function Loading(props: { what: string }) {
  return (
    <p class="muted" role="status">
      Loading {props.what}…
    </p>
  );
}

/** A button that asks once more before `onConfirm`. */
export function ConfirmButton(props: {
  label: string;
  confirmLabel: string;
  onConfirm: () => void;
  disabled?: boolean;
  danger?: boolean;
  /** Accessible name of the first button where its label alone is ambiguous. */
  ariaLabel?: string;
}) {
  const [asking, setAsking] = useState(false);
  const confirmRef = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (asking) confirmRef.current?.focus();
  }, [asking]);
  if (!asking) {
    return (
      <button
        type="button"
        class={props.danger ? "danger" : "secondary"}
        disabled={props.disabled}
        aria-label={props.ariaLabel}
        onClick={() => setAsking(true)}
      >
        {props.label}
      </button>
    );
  }
  return (
    <span class="confirm">
      <button
        type="button"
        ref={confirmRef}
        class={props.danger ? "danger" : "primary"}
        onClick={() => {
          setAsking(false);
          props.onConfirm();
        }}
      >
        {props.confirmLabel}
      </button>
      <button type="button" class="secondary" onClick={() => setAsking(false)}>
        Cancel
      </button>
    </span>
  );
}

/** A one-field form for a new name (rename, clone, merge), 1..50 characters. */
export function NameForm(props: {
  label: string;
  initial: string;
  /** The submit button's text, which may depend on the name typed. */
  submit: (name: string) => string;
  busy: boolean;
  onSubmit: (name: string) => void;
  onCancel: () => void;
}) {
  const [name, setName] = useState(props.initial);
  return (
    <form
      class="row"
      onSubmit={(event) => {
        event.preventDefault();
        props.onSubmit(name.trim());
      }}
    >
      <label>
        {props.label}
        <input required maxLength={50} value={name} onInput={(e) => setName(e.currentTarget.value)} />
      </label>
      <button type="submit" class="primary" disabled={props.busy}>
        {props.submit(name.trim())}
      </button>
      <button type="button" class="secondary" onClick={props.onCancel}>
        Cancel
      </button>
    </form>
  );
}

/** Copies `text` to the clipboard (or selects it where the clipboard is not allowed). */
export function CopyButton(props: { text: string; label: string; targetId?: string }) {
  const [copied, setCopied] = useState("");
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(props.text);
      setCopied("Copied");
    } catch {
      const target = props.targetId ? document.getElementById(props.targetId) : null;
      if (target instanceof HTMLInputElement) target.select();
      setCopied("Selected: press Ctrl+C to copy");
    }
    window.setTimeout(() => setCopied(""), 2500);
  };
  return (
    <span class="copy">
      <button type="button" class="secondary" onClick={() => void copy()}>
        {props.label}
      </button>
      <span role="status" class="muted">
        {copied}
      </span>
    </span>
  );
}

/** Sets the document title and renders the page heading (focused on arrival). */
export function PageTitle(props: { children: ComponentChildren; title: string }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${props.title} - Facegrid console`;
    ref.current?.focus();
  }, [props.title]);
  return (
    <h1 ref={ref} tabIndex={-1}>
      {props.children}
    </h1>
  );
}

/** A horizontally scrollable region for wide tables, reachable by keyboard. */
export function Scroll(props: { label: string; children: ComponentChildren; tall?: boolean }) {
  return (
    <div class={props.tall ? "scroll tall" : "scroll"} role="region" aria-label={props.label} tabIndex={0}>
      {props.children}
    </div>
  );
}

export function formatDate(value?: string): string {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? value : date.toLocaleString();
}
