/**
 * The one policy for reads of ReplacingMergeTree tables with FINAL. Filters stay after FINAL
 * (never moved to PREWHERE, which would test an older version's columns and resurrect or drop
 * a row). No merging across partitions: a suspect's partition (year of event_time) is fixed by
 * its id, so its versions always share a partition, and partitions are de-duplicated in parallel.
 */
export const FINAL_SETTINGS_LIST =
  "optimize_move_to_prewhere_if_final = 0, optimize_move_to_prewhere = 0, do_not_merge_across_partitions_select_final = 1";
export const FINAL_SETTINGS = `SETTINGS ${FINAL_SETTINGS_LIST}`;
