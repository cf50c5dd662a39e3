-- fundguard store, migration 001: the core tables.
-- Every statement is idempotent (IF NOT EXISTS), so a run interrupted between a CREATE
-- and its schema_migrations row is simply repeated. The same DDL runs on a ClickHouse
-- server over HTTP and on embedded chdb.
--
-- Time columns: the contract's timestamps are ISO-8601 strings with an offset, and a
-- suspect's event_time must come back byte-identical to the settlement's settled_at.
-- So the original string is stored (`*_iso`) and the DateTime64 column used for
-- filtering and partitioning is MATERIALIZED from it: the two cannot disagree.

-- Findings. One row per (run_id, suspect_id) after de-duplication: the highest
-- `version` wins (version = input position * 2^20 + index of the change in its event,
-- so a replay rewrites identical versions). Retraction is a row with status 'retracted'.
-- Sorting key: everything before suspect_id is a function of suspect_id (the id hashes
-- detector, rule and the suspect settlement, which fixes region and event time), so
-- de-duplication is exactly per (run_id, suspect_id) while region / detector / month
-- filters use the primary index. Skipping indexes are only on columns that never change
-- between versions of one suspect, so they are safe under FINAL.
CREATE TABLE IF NOT EXISTS suspects
(
    run_id             LowCardinality(String) DEFAULT 'live',
    suspect_id         String,
    detector           LowCardinality(String),
    rule               LowCardinality(String),
    severity           Enum8('REMIND' = 1, 'WARN' = 2, 'BLOCK' = 3),
    person_id          String,
    settlement_ids     Array(String),
    institution_id     String,
    region_code        LowCardinality(String),
    amount_at_risk_fen Int64,
    event_time_iso     String,
    event_time         DateTime64(3, 'Asia/Shanghai') MATERIALIZED parseDateTime64BestEffort(event_time_iso, 3, 'Asia/Shanghai'),
    detected_at_iso    String,
    detected_at        DateTime64(3, 'UTC') MATERIALIZED parseDateTime64BestEffort(detected_at_iso, 3, 'UTC'),
    detector_version   LowCardinality(String),
    evidence           String,
    status             Enum8('active' = 1, 'retracted' = 2),
    version            UInt64,
    config_hash        String DEFAULT '',
    written_at         DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_institution institution_id TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_person person_id TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_settlement settlement_ids TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_event_time event_time TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYear(event_time)
ORDER BY (run_id, region_code, detector, toYYYYMM(event_time), suspect_id)
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

-- Archive of every settlement event (SETTLE and REVERSAL), for the per-person timeline
-- and replays. Re-delivery of a settlement_id collapses to one row (person_id is fixed
-- for a settlement, so the key de-duplicates exactly by settlement_id).
CREATE TABLE IF NOT EXISTS settlements
(
    settlement_id          String,
    event_type             Enum8('SETTLE' = 1, 'REVERSAL' = 2),
    original_settlement_id Nullable(String),
    visit_id               String,
    person_id              String,
    gender                 Enum8('M' = 1, 'F' = 2),
    birth_date             Date32,
    insurance_type         Enum8('EMPLOYEE' = 1, 'RESIDENT' = 2),
    institution_id         String,
    institution_name       String,
    region_code            LowCardinality(String),
    visit_type             Enum8('OUTPATIENT' = 1, 'INPATIENT' = 2, 'PHARMACY' = 3),
    admission_date         Date32,
    discharge_date         Date32,
    discharge_reason       Nullable(Enum8('NORMAL' = 1, 'TRANSFER' = 2, 'DEATH' = 3, 'OTHER' = 4)),
    settled_at_iso         String,
    settled_at             DateTime64(3, 'Asia/Shanghai') MATERIALIZED parseDateTime64BestEffort(settled_at_iso, 3, 'Asia/Shanghai'),
    diagnoses              Array(Tuple(code String, name String, primary Bool)),
    items                  Array(Tuple(
                               line_no Int32,
                               item_code String,
                               item_name String,
                               category Enum8('DRUG' = 1, 'SERVICE' = 2, 'MATERIAL' = 3),
                               quantity Float64,
                               unit_price_fen Int64,
                               amount_fen Int64,
                               service_date Date32)),
    total_fen              Int64,
    fund_paid_fen          Int64,
    ingested_at            DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_settlement_id settlement_id TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_original original_settlement_id TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_institution institution_id TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_settled_at settled_at TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree
PARTITION BY toYear(settled_at)
ORDER BY (person_id, settlement_id)
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

-- Death records: the latest report per person wins.
CREATE TABLE IF NOT EXISTS deaths
(
    person_id       String,
    death_date      Date32,
    source          Enum8('CIVIL_AFFAIRS' = 1, 'PUBLIC_SECURITY' = 2, 'HEALTH' = 3, 'OTHER' = 4),
    reported_at_iso String,
    reported_at     DateTime64(3, 'Asia/Shanghai') MATERIALIZED parseDateTime64BestEffort(reported_at_iso, 3, 'Asia/Shanghai'),
    ingested_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(reported_at)
ORDER BY person_id
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

-- Investigator workflow: an append-only history per case; the latest event is the state.
CREATE TABLE IF NOT EXISTS case_events
(
    run_id     LowCardinality(String) DEFAULT 'live',
    suspect_id String,
    status     Enum8('under_review' = 1, 'confirmed' = 2, 'dismissed' = 3),
    note       String DEFAULT '',
    user       LowCardinality(String),
    at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (run_id, suspect_id, at);

-- Every API query: who asked what, and how many rows they got.
CREATE TABLE IF NOT EXISTS audit_log
(
    at      DateTime64(3, 'UTC') DEFAULT now64(3),
    who     LowCardinality(String),
    route   LowCardinality(String),
    filters String DEFAULT '{}',
    rows    UInt64 DEFAULT 0
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (who, at);
