//! pushbench-driver-tcp (being built).
