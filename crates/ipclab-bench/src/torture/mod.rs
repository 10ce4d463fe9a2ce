//! Long runs under faults (`ipclab torture ...`), apart from the
//! measurements: each prints counts, not timings.

pub mod hostile;
