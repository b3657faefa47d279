//! pushbench-driver-sse (being built).
