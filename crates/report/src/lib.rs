//! pushbench-report (being built).
