-- The fleet's tables: what every building sent, deduplicated by event id, and what is missing.

CREATE TABLE buildings (
    building text PRIMARY KEY,
    watermark bigint NOT NULL DEFAULT 0,      -- every seq at or below is stored or recorded absent
    max_seq bigint NOT NULL DEFAULT 0,        -- the highest seq stored
    state text,                               -- online | offline, from the last status message applied
    status jsonb,
    status_time timestamptz,                  -- the status message's own time
    since timestamptz,                        -- when the gateway's current (or last) session began
    last_seen timestamptz,                    -- when anything last arrived from it
    head_seq bigint,
    synced_seq bigint,
    credential_version bigint
);

CREATE TABLE events (
    id text PRIMARY KEY,                      -- the gateway's UUIDv7: duplicates stop here
    building text NOT NULL,
    seq bigint NOT NULL,
    time timestamptz,
    mono_ns bigint,
    kind text NOT NULL,
    priority text NOT NULL,
    source text NOT NULL,
    body jsonb NOT NULL,
    lane text,
    valid boolean NOT NULL DEFAULT true,      -- false: it broke its schema (problems says how); kept all the same
    problems text,
    stored_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX events_by_building_seq ON events (building, seq);
CREATE INDEX events_invalid ON events (building) WHERE NOT valid;

-- Holes below a building's head; a worker that repairs one holds it (owner, lease) so no other pulls it too.
CREATE TABLE gaps (
    building text NOT NULL,
    first_seq bigint NOT NULL,
    last_seq bigint NOT NULL,
    found_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    owner text,
    lease_until timestamptz,
    pulls integer NOT NULL DEFAULT 0,
    PRIMARY KEY (building, first_seq)
);

-- Ranges the gateway no longer holds (evicted, lost to a refusing disk, never used): never asked for again.
CREATE TABLE absent (
    building text NOT NULL,
    first_seq bigint NOT NULL,
    last_seq bigint NOT NULL,
    reason text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (building, first_seq)
);

CREATE TABLE command_results (
    building text NOT NULL,
    nonce text NOT NULL,
    command text NOT NULL,
    outcome text NOT NULL,
    detail jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (building, nonce)
);

CREATE TABLE snapshots (
    event_id text PRIMARY KEY,
    building text NOT NULL,
    seq bigint NOT NULL,
    kind text,
    file text NOT NULL,
    bytes integer NOT NULL,
    sha256 text NOT NULL,                     -- checked against jpeg on arrival
    jpeg bytea NOT NULL,
    received_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE credential_requests (
    building text NOT NULL,
    have_version bigint,
    seen_version bigint,
    received_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Credential change sets and snapshots the fleet signed and sent, by version.
CREATE TABLE credential_sets (
    building text NOT NULL,
    version bigint NOT NULL,
    kind text NOT NULL,
    body jsonb NOT NULL,
    sent_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (building, version)
);

-- Messages that could not be taken as they are (not JSON, not the shape of their topic, too large):
-- kept aside with the reason, counted, never silently dropped.
CREATE TABLE quarantine (
    id bigserial PRIMARY KEY,
    topic text NOT NULL,
    building text,
    reason text NOT NULL,
    size integer NOT NULL,
    payload bytea,                            -- the first bytes only when it was too large
    received_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
