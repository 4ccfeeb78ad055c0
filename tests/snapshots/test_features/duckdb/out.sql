SELECT
  "t12"."account_id",
  "t12"."n_events",
  "t12"."first_ts",
  "t12"."last_ts",
  "t12"."org_id",
  "t12"."active_days",
  "t12"."input_tokens",
  "t12"."output_tokens",
  "t12"."reasoning_tokens",
  "t12"."output_tokens_mean",
  "t12"."max_output_tokens_mean",
  CAST("t12"."output_tokens" AS DOUBLE) / GREATEST("t12"."input_tokens", 1) AS "output_ratio",
  "t12"."fanout_share",
  "t12"."n_mean",
  "t12"."logprobs_share",
  "t12"."temperature_zero_share",
  "t12"."temperature_distinct",
  "t12"."high_effort_share",
  "t12"."batch_share",
  "t12"."error_share",
  CAST("t12"."_conversations" + "t12"."_unthreaded" AS DOUBLE) / CAST("t12"."n_events" AS DOUBLE) AS "conversation_share",
  "t12"."ip_distinct",
  "t12"."user_agent_distinct",
  "t12"."model_distinct",
  "t12"."prompt_chars_mean",
  CAST("t12"."_prompt_distinct" AS DOUBLE) / CAST("t12"."n_events" AS DOUBLE) AS "prompt_distinct_share",
  "t18"."gap_median",
  "t18"."_gap_std" / GREATEST("t18"."_gap_mean", 1e-09) AS "gap_cv",
  "t21"."hour_entropy",
  "t21"."active_hours",
  CAST("t9"."_peak_hour_events" AS DOUBLE) / CAST("t12"."n_events" AS DOUBLE) AS "peak_hour_share",
  CAST(COALESCE("t23"."_pivot_events", 0) AS DOUBLE) / CAST("t12"."n_events" AS DOUBLE) AS "pivot_share"
FROM (
  SELECT
    "t0"."account_id",
    COUNT(*) AS "n_events",
    MIN("t0"."ts") AS "first_ts",
    MAX("t0"."ts") AS "last_ts",
    MAX("t0"."org_id") AS "org_id",
    COUNT(DISTINCT CAST("t0"."ts" AS DATE)) AS "active_days",
    SUM(COALESCE("t0"."input_tokens", 0)) AS "input_tokens",
    SUM(COALESCE("t0"."output_tokens", 0)) AS "output_tokens",
    SUM(COALESCE("t0"."reasoning_tokens", 0)) AS "reasoning_tokens",
    AVG(COALESCE("t0"."output_tokens", 0)) AS "output_tokens_mean",
    AVG("t0"."max_output_tokens") AS "max_output_tokens_mean",
    AVG(CASE WHEN COALESCE("t0"."n", 1) > 1 THEN 1.0 ELSE 0.0 END) AS "fanout_share",
    AVG(COALESCE("t0"."n", 1)) AS "n_mean",
    AVG(
      CASE
        WHEN COALESCE("t0"."logprobs", FALSE) OR (
          COALESCE("t0"."top_logprobs", 0) > 0
        )
        THEN 1.0
        ELSE 0.0
      END
    ) AS "logprobs_share",
    AVG(CASE WHEN COALESCE("t0"."temperature", 1.0) = 0 THEN 1.0 ELSE 0.0 END) AS "temperature_zero_share",
    COUNT(DISTINCT "t0"."temperature") AS "temperature_distinct",
    AVG(
      CASE
        WHEN LOWER("t0"."reasoning_effort") IN ('high', 'xhigh', 'max', 'maximum')
        THEN 1.0
        ELSE 0.0
      END
    ) AS "high_effort_share",
    AVG(CASE WHEN COALESCE("t0"."is_batch", FALSE) THEN 1.0 ELSE 0.0 END) AS "batch_share",
    AVG(CASE WHEN "t0"."status" IN ('error', 'refused') THEN 1.0 ELSE 0.0 END) AS "error_share",
    COUNT(DISTINCT "t0"."conversation_id") AS "_conversations",
    SUM(CAST("t0"."conversation_id" IS NULL AS INT)) AS "_unthreaded",
    COUNT(DISTINCT "t0"."client_ip") AS "ip_distinct",
    COUNT(DISTINCT "t0"."user_agent") AS "user_agent_distinct",
    COUNT(DISTINCT "t0"."model") AS "model_distinct",
    AVG(LENGTH("t0"."prompt")) AS "prompt_chars_mean",
    COUNT(DISTINCT "t0"."prompt") AS "_prompt_distinct"
  FROM "events" AS "t0"
  GROUP BY
    1
) AS "t12"
LEFT OUTER JOIN (
  SELECT
    "t15"."account_id",
    AVG("t15"."gap") AS "_gap_mean",
    STDDEV_SAMP("t15"."gap") AS "_gap_std",
    QUANTILE_CONT("t15"."gap", 0.5) AS "gap_median"
  FROM (
    SELECT
      *
    FROM (
      SELECT
        "t0"."event_id",
        "t0"."ts",
        "t0"."account_id",
        "t0"."api_key_id",
        "t0"."org_id",
        "t0"."client_ip",
        "t0"."user_agent",
        "t0"."client_fingerprint",
        "t0"."model",
        "t0"."prompt",
        "t0"."system_prompt",
        "t0"."response",
        "t0"."input_tokens",
        "t0"."output_tokens",
        "t0"."reasoning_tokens",
        "t0"."temperature",
        "t0"."top_p",
        "t0"."max_output_tokens",
        "t0"."n",
        "t0"."logprobs",
        "t0"."top_logprobs",
        "t0"."reasoning_effort",
        "t0"."conversation_id",
        "t0"."is_batch",
        "t0"."status",
        "t0"."extra",
        CAST(EPOCH(CAST("t0"."ts" AS TIMESTAMP)) - LAG(EPOCH(CAST("t0"."ts" AS TIMESTAMP))) OVER (
          PARTITION BY "t0"."account_id"
          ORDER BY "t0"."ts" ASC
          ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
        ) AS DOUBLE) AS "gap"
      FROM "events" AS "t0"
    ) AS "t10"
    WHERE
      "t10"."gap" IS NOT NULL
  ) AS "t15"
  GROUP BY
    1
) AS "t18"
  ON "t12"."account_id" = "t18"."account_id"
LEFT OUTER JOIN (
  SELECT
    "t14"."account_id",
    -(
      SUM("t14"."plogp")
    ) / LN(24.0) AS "hour_entropy",
    COUNT(*) AS "active_hours"
  FROM (
    SELECT
      "t4"."account_id",
      "t4"."hour",
      "t4"."c",
      (
        CAST("t4"."c" AS DOUBLE) / SUM("t4"."c") OVER (
          PARTITION BY "t4"."account_id"
          ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
        )
      ) * LN(
        CAST("t4"."c" AS DOUBLE) / SUM("t4"."c") OVER (
          PARTITION BY "t4"."account_id"
          ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
        )
      ) AS "plogp"
    FROM (
      SELECT
        "t0"."account_id",
        EXTRACT(hour FROM "t0"."ts") AS "hour",
        COUNT(*) AS "c"
      FROM "events" AS "t0"
      GROUP BY
        1,
        2
    ) AS "t4"
  ) AS "t14"
  GROUP BY
    1
) AS "t21"
  ON "t12"."account_id" = "t21"."account_id"
LEFT OUTER JOIN (
  SELECT
    "t3"."account_id",
    MAX("t3"."c") AS "_peak_hour_events"
  FROM (
    SELECT
      "t0"."account_id",
      DATE_TRUNC('HOUR', "t0"."ts") AS "bucket",
      COUNT(*) AS "c"
    FROM "events" AS "t0"
    GROUP BY
      1,
      2
  ) AS "t3"
  GROUP BY
    1
) AS "t9"
  ON "t12"."account_id" = "t9"."account_id"
LEFT OUTER JOIN (
  SELECT
    "t19"."account_id",
    SUM(
      CASE
        WHEN "t19"."first_use" < (
          "t19"."released" + INTERVAL '24' HOUR
        )
        THEN "t19"."c"
        ELSE 0
      END
    ) AS "_pivot_events"
  FROM (
    SELECT
      "t6"."account_id",
      "t6"."model",
      "t6"."first_use",
      "t6"."c",
      "t16"."released"
    FROM (
      SELECT
        "t0"."account_id",
        "t0"."model",
        MIN("t0"."ts") AS "first_use",
        COUNT(*) AS "c"
      FROM "events" AS "t0"
      GROUP BY
        1,
        2
    ) AS "t6"
    INNER JOIN (
      SELECT
        *
      FROM (
        SELECT
          "t5"."model",
          MIN("t5"."ts") AS "released"
        FROM (
          SELECT
            *
          FROM "events" AS "t0"
          WHERE
            "t0"."model" IS NOT NULL
        ) AS "t5"
        GROUP BY
          1
      ) AS "t8"
      WHERE
        "t8"."released" > (
          (
            SELECT
              MIN("t0"."ts") AS "Min(ts)"
            FROM "events" AS "t0"
          ) + INTERVAL '24' HOUR
        )
    ) AS "t16"
      ON "t6"."model" = "t16"."model"
  ) AS "t19"
  GROUP BY
    1
) AS "t23"
  ON "t12"."account_id" = "t23"."account_id"
