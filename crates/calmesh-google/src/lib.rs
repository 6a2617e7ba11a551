//! calmesh-google (in progress).
