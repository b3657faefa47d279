//! pushbench-driver-ws (being built).
