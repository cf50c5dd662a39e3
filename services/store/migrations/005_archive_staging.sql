-- fundguard store, migration 005: the archive's raw-bytes entry points.
-- Writers insert the exact input bytes (Confluent-framed Avro from Kafka, NDJSON lines from files)
-- into `settlements_in` / `deaths_in`: Null tables under the contract's field names, dates still
-- strings, so ClickHouse's parser reads the records as sent and nothing is stored there. The
-- materialized views convert each block into the archive tables, giving the same rows as the
-- writers' JS row path (rows.ts: settlementRow, deathRow). Avro enums map by symbol name and
-- `[null, T]` to Nullable. Idempotent: IF NOT EXISTS throughout.
CREATE TABLE IF NOT EXISTS settlements_in
(
    settlement_id          String,
    event_type             Enum8('SETTLE' = 1, 'REVERSAL' = 2),
    original_settlement_id Nullable(String),
    visit_id               String,
    person_id              String,
    gender                 Enum8('M' = 1, 'F' = 2),
    birth_date             String,
    insurance_type         Enum8('EMPLOYEE' = 1, 'RESIDENT' = 2),
    institution_id         String,
    institution_name       String,
    region_code            String,
    visit_type             Enum8('OUTPATIENT' = 1, 'INPATIENT' = 2, 'PHARMACY' = 3),
    admission_date         String,
    discharge_date         String,
    discharge_reason       Nullable(Enum8('NORMAL' = 1, 'TRANSFER' = 2, 'DEATH' = 3, 'OTHER' = 4)),
    settled_at             String,
    diagnoses              Array(Tuple(code String, name String, primary Bool)),
    items                  Array(Tuple(
                               line_no Int32,
                               item_code String,
                               item_name String,
                               category Enum8('DRUG' = 1, 'SERVICE' = 2, 'MATERIAL' = 3),
                               quantity Float64,
                               unit_price_fen Int64,
                               amount_fen Int64,
                               service_date String)),
    total_fen              Int64,
    fund_paid_fen          Int64
)
ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS settlements_in_mv TO settlements AS
SELECT
    settlement_id,
    event_type,
    original_settlement_id,
    visit_id,
    person_id,
    gender,
    toDate32(birth_date) AS birth_date,
    insurance_type,
    institution_id,
    institution_name,
    region_code,
    visit_type,
    toDate32(admission_date) AS admission_date,
    toDate32(discharge_date) AS discharge_date,
    discharge_reason,
    settled_at AS settled_at_iso,
    diagnoses,
    CAST(items, 'Array(Tuple(line_no Int32, item_code String, item_name String, category Enum8(\'DRUG\' = 1, \'SERVICE\' = 2, \'MATERIAL\' = 3), quantity Float64, unit_price_fen Int64, amount_fen Int64, service_date Date32))') AS items,
    total_fen,
    fund_paid_fen
FROM settlements_in;

CREATE TABLE IF NOT EXISTS deaths_in
(
    person_id   String,
    death_date  String,
    source      Enum8('CIVIL_AFFAIRS' = 1, 'PUBLIC_SECURITY' = 2, 'HEALTH' = 3, 'OTHER' = 4),
    reported_at String
)
ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS deaths_in_mv TO deaths AS
SELECT
    person_id,
    toDate32(death_date) AS death_date,
    source,
    reported_at AS reported_at_iso
FROM deaths_in;
