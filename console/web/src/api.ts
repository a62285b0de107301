// The console's only way to the server: the public REST API on the same origin.
// Admin calls carry the session's bearer token (refreshed before it expires, and once more on
// a 401); face calls carry a service's API key. Errors become ApiError with the API's message.

import { useEffect, useState } from "preact/hooks";
import type { TokenResponse, User } from "./types";

export const ADMIN = "/api/v1/admin";

/** An answer of the API that is not a success, or no answer at all. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: number | null;

  constructor(message: string, status: number, code: number | null) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export interface Session {
  accessToken: string;
  refreshToken: string;
  /** When the access token expires, ms since the epoch. */
  accessExpiresAt: number;
  user: User;
}

const STORAGE_KEY = "facegrid.session";
/** Refresh this long before the access token expires. */
const REFRESH_MARGIN_MS = 60_000;

let session: Session | null = readStored();
let refreshing: Promise<boolean> | null = null;
let refreshTimer: number | undefined;
const listeners = new Set<(s: Session | null) => void>();

function readStored(): Session | null {
  try {
    const raw = localStorage.getItem(STORAGE_KEY);
    return raw ? (JSON.parse(raw) as Session) : null;
  } catch {
    return null;
  }
}

function setSession(next: Session | null): void {
  session = next;
  if (next) localStorage.setItem(STORAGE_KEY, JSON.stringify(next));
  else localStorage.removeItem(STORAGE_KEY);
  scheduleRefresh();
  listeners.forEach((listener) => listener(next));
}

function scheduleRefresh(): void {
  window.clearTimeout(refreshTimer);
  if (!session) return;
  const delay = Math.max(session.accessExpiresAt - Date.now() - REFRESH_MARGIN_MS, 1000);
  refreshTimer = window.setTimeout(() => void refreshSession(), delay);
}

export function currentSession(): Session | null {
  return session;
}

/** The signed-in session, re-rendering the caller when it changes. */
export function useSession(): Session | null {
  const [value, setValue] = useState(session);
  useEffect(() => {
    listeners.add(setValue);
    return () => void listeners.delete(setValue);
  }, []);
  return value;
}

/** Reads an error answer: CompreFace's {"message", "code"}, or Envoy's plain text. */
async function errorOf(response: Response): Promise<ApiError> {
  const text = await response.text();
  try {
    const body = JSON.parse(text) as { message?: string; code?: number };
    if (body.message) return new ApiError(body.message, response.status, body.code ?? null);
  } catch {
    // not JSON: fall through to the text itself
  }
  const message = text.trim() || `${response.status} ${response.statusText}`;
  return new ApiError(message, response.status, null);
}

async function send(path: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(path, init);
  } catch {
    throw new ApiError("Cannot reach the Facegrid server: is it running?", 0, null);
  }
}

function tokensToSession(tokens: TokenResponse, user: User): Session {
  return {
    accessToken: tokens.access_token,
    refreshToken: tokens.refresh_token,
    accessExpiresAt: Date.now() + tokens.expires_in_s * 1000,
    user,
  };
}

/** Exchanges the refresh token for new tokens; false (and signed out) when that fails. */
export function refreshSession(): Promise<boolean> {
  if (refreshing) return refreshing;
  const current = session;
  if (!current) return Promise.resolve(false);
  refreshing = (async () => {
    try {
      const response = await send(`${ADMIN}/auth/refresh`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ refresh_token: current.refreshToken }),
      });
      if (!response.ok) {
        if (response.status === 401) setSession(null);
        return false;
      }
      const tokens = (await response.json()) as TokenResponse;
      setSession(tokensToSession(tokens, current.user));
      return true;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

/** Calls the admin API with the session's token; JSON in, JSON out. */
export async function admin<T>(method: string, path: string, body?: unknown): Promise<T> {
  const call = () =>
    send(`${ADMIN}${path}`, {
      method,
      headers: {
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...(session ? { authorization: `Bearer ${session.accessToken}` } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  let response = await call();
  if (response.status === 401 && session && (await refreshSession())) response = await call();
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401 && session) {
      setSession(null);
      throw new ApiError(`${error.message} - please sign in again.`, 401, error.code);
    }
    throw error;
  }
  return (await response.json()) as T;
}

export async function signIn(email: string, password: string): Promise<void> {
  const response = await send(`${ADMIN}/auth/signin`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email, password }),
  });
  if (!response.ok) throw await errorOf(response);
  const tokens = (await response.json()) as TokenResponse;
  setSession(tokensToSession(tokens, tokens.user as User));
}

export async function signUp(fields: {
  email: string;
  password: string;
  first_name: string;
  last_name: string;
}): Promise<User> {
  const response = await send(`${ADMIN}/auth/signup`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(fields),
  });
  if (!response.ok) throw await errorOf(response);
  return ((await response.json()) as { user: User }).user;
}

export async function signOut(): Promise<void> {
  const current = session;
  setSession(null);
  if (!current) return;
  // Revoke the session on the server; the console is signed out whatever it answers.
  await send(`${ADMIN}/auth/signout`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${current.accessToken}`,
    },
    body: JSON.stringify({ refresh_token: current.refreshToken }),
  }).catch(() => undefined);
}

/** What a face API call gave back, for the playground's JSON panel. */
export interface FaceAnswer<T> {
  data: T;
  status: number;
  elapsedMs: number;
}

/** Calls the face API (recognition, detection, verification) with a service's API key. */
export async function faceApi<T>(
  method: string,
  path: string,
  apiKey: string,
  options: { query?: Record<string, string>; form?: FormData; json?: unknown } = {},
): Promise<FaceAnswer<T>> {
  const query = options.query ? `?${new URLSearchParams(options.query)}` : "";
  const headers: Record<string, string> = { "x-api-key": apiKey };
  let body: BodyInit | undefined = options.form;
  if (options.json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(options.json);
  }
  const started = performance.now();
  const response = await send(`${path}${query}`, { method, headers, body });
  if (!response.ok) throw await errorOf(response);
  const data = (await response.json()) as T;
  return { data, status: response.status, elapsedMs: performance.now() - started };
}

/** Fetches a stored example image (it needs the API key, so an <img src> cannot). */
export async function faceImage(imageId: string, apiKey: string): Promise<Blob> {
  const response = await send(`/api/v1/recognition/faces/${encodeURIComponent(imageId)}/img`, {
    headers: { "x-api-key": apiKey },
  });
  if (!response.ok) throw await errorOf(response);
  return response.blob();
}

/** A message for any thrown value. */
export function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

scheduleRefresh();
