"""Feature stage: declarative feature definitions (use-case YAML `features`) compiled to Spark SQL, point-in-time
snapshots per entity and as-of date in Delta, the latest-features table, and point-in-time training sets.

    spec.py          the `features` section (pydantic), validated when the config loads
    compile.py       definitions -> Spark SQL expressions
    materialize.py   bronze -> features.<entity>_features snapshots (incremental, idempotent per date)
    latest.py        features.<entity>_features_latest: one row per entity, newest snapshot
    training_set.py  labels joined as of their time to the newest earlier snapshot"""
