//! Rebuilds when a migration changes (`sqlx::migrate!` embeds them at compile
//! time, and the compiler does not track the files by itself).

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
