//! pushbench-server (being built).
