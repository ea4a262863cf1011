//! End to end over SSH: being written.
