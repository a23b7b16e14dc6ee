"""2DASL training: config, callbacks and the `keras fit` driver."""
