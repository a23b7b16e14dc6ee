"""2DASL training: the config dataclasses (:mod:`.train_config`), the callbacks (:mod:`.callbacks`), a config's
profiled faces (:mod:`.profiled`, made by :mod:`tf2dasl.profiling`) and the ``keras fit`` driver (:mod:`.trainer`)
that builds data, models, strategy and run folder. Must not import the CLI
(:mod:`tf2dasl.commands`); the models it trains live in :mod:`tf2dasl.models`, the data in :mod:`tf2dasl.data`."""
