-- fundguard store, migration 003: runs.
-- A run is a named execution of chosen detectors (and versions, with a config) over a source:
-- NDJSON files or a time range of the input topics. Its suspects are the `suspects` rows with
-- run_id = name; the live stream writes run_id 'live' and has no row here.
-- One row per run after de-duplication: every status update is a new row with a higher
-- `version` (microseconds of wall time), so readers use FINAL.
CREATE TABLE IF NOT EXISTS runs
(
    name                 String,
    -- 'files' or 'topics'; `source` is the JSON description (paths, or from/to and offsets).
    source_kind          LowCardinality(String),
    source               String,
    -- Detector ids, versions and short config hashes; `config` is the effective config of each, JSON.
    detectors            Array(Tuple(id String, version String, config_hash String)),
    config               String,
    -- Short sha256 of the canonical JSON of {detector: {version, config}} over the chosen detectors.
    config_hash          String,
    status               Enum8('running' = 1, 'done' = 2, 'failed' = 3, 'interrupted' = 4),
    started_at           DateTime64(3, 'UTC'),
    finished_at          Nullable(DateTime64(3, 'UTC')),
    -- Input events processed (valid ones), input records skipped as invalid, active suspects.
    events               UInt64,
    bad_events           UInt64,
    suspects             UInt64,
    suspects_by_detector Map(String, UInt64),
    error                String DEFAULT '',
    version              UInt64,
    updated_at           DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY name;
