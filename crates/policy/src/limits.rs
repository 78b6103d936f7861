//! Bounds on what a rule may hold, so that a stored rule cannot make evaluation slow or large.

/// Entries in any list of a rule body (CIDRs, hosts, methods, values, constraints, groups).
pub const MAX_LIST: usize = 200;
/// Windows in one `time_window` rule (as the client's `outside_windows`).
pub const MAX_WINDOWS: usize = 20;
/// Characters in a regex or glob.
pub const MAX_PATTERN_LEN: usize = 512;
/// Characters in a field name or JSON pointer.
pub const MAX_FIELD_LEN: usize = 256;
/// Compiled size of one regex (bytes), and of its lazy DFA.
pub const REGEX_SIZE_LIMIT: usize = 64 * 1024;
/// Characters in a custom rule's Cedar condition.
pub const MAX_CEDAR_LEN: usize = 8 * 1024;
/// Parsed rules kept in the engine's cache before it is emptied.
pub const MAX_CACHED: usize = 10_000;
