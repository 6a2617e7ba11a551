//! The Google event reader: JSON → `calmesh_core::Event`, then the writer
//! and the reader again. Nothing may panic.

#![no_main]

use calmesh_google::{read_event, write_event};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(read) = read_event(&value) else {
        return;
    };
    let Some(event) = read.event else {
        return;
    };
    let _ = event.effective_end().to_rfc3339();
    let written = write_event(&read.id, &event, &read.tags, chrono_tz::Europe::Berlin);
    let _ = read_event(&written);
});
