//! The daemon's allocator settings.
//!
//! The binaries use mimalloc (the hot path allocates many small, short-lived values).
//! Out of the box mimalloc trades memory for speed in two ways that matter to a
//! long-running CDC process measured by its resident size: it asks for transparent huge
//! pages for its arenas (so a few live objects pin 2 MiB pages), and it returns freed
//! pages to the OS only after a second. Measured with the end-to-end bench (300k changes,
//! same run, docs/benchmarks.md): peak RSS of MariaDB → lake 95 → 30-32 MB, → Kafka
//! 115 → 61 MB, Postgres → Kafka 109 → 57 MB, at the same throughput within this
//! machine's noise. THP is turned off at build time (the `mimalloc` crate's `no_thp`
//! feature); the purge delay is set here, at start.

/// mimalloc's `mi_option_purge_delay` (its position in `mi_option_t`, mimalloc v3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Milliseconds after which mimalloc gives freed pages back to the OS (its default is
/// 1,000).
pub const PURGE_DELAY_MS: i32 = 10;

/// Applies the settings above; call once at the start of `main`. An explicit
/// `MIMALLOC_PURGE_DELAY` in the environment wins (it is how the figures above were
/// found).
#[allow(unsafe_code)] // One FFI call with plain integer arguments.
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: `mi_option_set` takes an option number and a value, both plain integers; it
    // is thread-safe and may be called at any time (mimalloc reads the option on each
    // purge).
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS.into()) }
}
