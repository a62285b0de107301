// The console's shell: header, navigation, and the page of the current route.

import { render } from "preact";
import { signOut, useSession } from "./api";
import { AppPage } from "./pages/App";
import { Apps } from "./pages/Apps";
import { SignIn, SignUp } from "./pages/Auth";
import { Reference } from "./pages/Reference";
import { ServicePage } from "./pages/Service";
import { navigate, useRoute } from "./router";
import type { Route } from "./router";
import { roleLabel } from "./types";
import { PageTitle } from "./ui";
import "./styles.css";

function Page(props: { route: Route; signedIn: boolean }) {
  const { route } = props;
  if (route.page === "reference") return <Reference />;
  if (route.page === "signup") return <SignUp />;
  if (route.page === "signin" || !props.signedIn) return <SignIn />;
  if (route.page === "apps") return <Apps />;
  if (route.page === "app") return <AppPage appId={route.appId} />;
  if (route.page === "service") {
    return <ServicePage appId={route.appId} serviceId={route.serviceId} tab={route.tab} />;
  }
  return (
    <section>
      <PageTitle title="Not found">Not found</PageTitle>
      <p>
        Nothing at <code>{route.path}</code>. <a href="#/apps">Go to the applications</a>.
      </p>
    </section>
  );
}

function Shell() {
  const session = useSession();
  const route = useRoute();
  const current = (page: string) => (route.page === page ? "page" : undefined);
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById("main")?.focus(); }}>
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href="#/apps">
          Facegrid
        </a>
        <nav aria-label="Main">
          {session ? (
            <a href="#/apps" aria-current={current("apps")}>
              Applications
            </a>
          ) : null}
          <a href="#/reference" aria-current={current("reference")}>
            API reference
          </a>
        </nav>
        <div class="user">
          {session ? (
            <>
              <span class="muted" data-testid="signed-in-as">
                {session.user.email} ({roleLabel(session.user.global_role)})
              </span>
              <button
                type="button"
                class="secondary"
                onClick={() => {
                  void signOut();
                  navigate("#/signin");
                }}
              >
                Sign out
              </button>
            </>
          ) : (
            <>
              <a href="#/signin">Sign in</a>
              <a href="#/signup">Sign up</a>
            </>
          )}
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Page route={route} signedIn={session !== null} />
      </main>
    </>
  );
}

render(<Shell />, document.getElementById("app")!);
