-- Buildings whose rows changed, for the watermark's advancer: ingest transactions append here instead of
-- locking the building's row, so workers writing the same buildings never wait for one another.
CREATE TABLE touched (
    building text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX touched_by_building ON touched (building);
