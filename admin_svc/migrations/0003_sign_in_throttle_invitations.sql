-- 0003_sign_in_throttle_invitations: sign-in throttling shared by every admin_svc node, and
-- invitations of e-mail addresses that have no account yet. Documented in docs/schema.md.

-- Credential attempts per account and per client address within a window (admin_svc/throttle.py).
-- key: SHA-256 of the lower-cased e-mail (scope 'account': known or not, nothing readable is
-- kept), or of the client address (scope 'address'). A row whose window has ended counts again
-- from 1; admin_svc deletes ended rows now and then.
CREATE TABLE sign_in_attempts (
    scope        text NOT NULL CHECK (scope IN ('account', 'address')),
    key          bytea NOT NULL CHECK (octet_length(key) = 32),
    attempts     integer NOT NULL CHECK (attempts >= 0),
    window_start timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX sign_in_attempts_window_start ON sign_in_attempts (window_start);

-- AddMember of an e-mail without an account: a pending membership, bound (moved to
-- app_members) in the transaction that creates that account.
CREATE TABLE app_invitations (
    application_id uuid NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    email          text NOT NULL
                   CHECK (char_length(email) BETWEEN 3 AND 254 AND email = lower(email)),
    role           text NOT NULL CHECK (role IN ('ADMINISTRATOR', 'USER')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (application_id, email)
);
CREATE INDEX app_invitations_email ON app_invitations (email);
