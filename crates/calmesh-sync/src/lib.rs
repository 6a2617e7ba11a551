//! calmesh-sync (in progress).
