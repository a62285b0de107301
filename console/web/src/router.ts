// Hash routes (#/apps/ID/...): the static server needs no fallback, and links are plain hrefs.

import { useEffect, useState } from "preact/hooks";

export type Route =
  | { page: "signin" }
  | { page: "signup" }
  | { page: "apps" }
  | { page: "app"; appId: string }
  | { page: "service"; appId: string; serviceId: string; tab: string }
  | { page: "reference" }
  | { page: "notfound"; path: string };

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, "") || "/apps";
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "signin") return { page: "signin" };
  if (parts[0] === "signup") return { page: "signup" };
  if (parts[0] === "reference") return { page: "reference" };
  if (parts[0] === "apps") {
    if (parts.length === 1) return { page: "apps" };
    if (parts.length === 2) return { page: "app", appId: parts[1] };
    if (parts[2] === "services" && parts.length >= 4) {
      return { page: "service", appId: parts[1], serviceId: parts[3], tab: parts[4] ?? "" };
    }
  }
  return { page: "notfound", path };
}

export function href(...parts: string[]): string {
  return `#/${parts.map(encodeURIComponent).join("/")}`;
}

export function navigate(to: string): void {
  window.location.hash = to;
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.hash));
  useEffect(() => {
    const changed = () => setRoute(parseRoute(window.location.hash));
    window.addEventListener("hashchange", changed);
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  return route;
}
