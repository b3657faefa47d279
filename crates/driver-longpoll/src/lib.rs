//! pushbench-driver-longpoll (being built).
