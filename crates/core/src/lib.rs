//! pushbench-core (being built).
