//! pushbench.
